"""network tables

Revision ID: 0001
Revises: 
"""
from alembic import op
import sqlalchemy as sa
import stratus.core.db
from sqlalchemy.dialects import mysql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('network_agent',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('agent_type', sa.String(length=64), nullable=False),
    sa.Column('binary', sa.String(length=64), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('availability_zone', sa.String(length=255), nullable=True),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('configurations', stratus.core.db.JSONText(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('started_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('heartbeat_timestamp', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('agent_type', 'host')
    )
    with op.batch_alter_table('network_agent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_agent_host'), ['host'], unique=False)

    op.create_table('network_network',
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('shared', sa.Boolean(), nullable=False),
    sa.Column('external', sa.Boolean(), nullable=False),
    sa.Column('mtu', sa.Integer(), nullable=False),
    sa.Column('port_security_enabled', sa.Boolean(), nullable=False),
    sa.Column('network_type', sa.String(length=16), nullable=False),
    sa.Column('physical_network', sa.String(length=64), nullable=True),
    sa.Column('segmentation_id', sa.Integer(), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('tags', stratus.core.db.JSONText(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('network_network', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_network_external'), ['external'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_network_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_network_shared'), ['shared'], unique=False)

    op.create_table('network_quota',
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('hard_limit', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('project_id', 'resource')
    )
    op.create_table('network_security_group',
    sa.Column('stateful', sa.Boolean(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('tags', stratus.core.db.JSONText(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('network_security_group', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_security_group_project_id'), ['project_id'], unique=False)

    op.create_table('network_default_security_group',
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('security_group_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['security_group_id'], ['network_security_group.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id'),
    sa.UniqueConstraint('security_group_id')
    )
    op.create_table('network_port',
    sa.Column('network_id', sa.String(length=36), nullable=False),
    sa.Column('mac_address', sa.String(length=32), nullable=False),
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('device_id', sa.String(length=255), nullable=False),
    sa.Column('device_owner', sa.String(length=255), nullable=False),
    sa.Column('port_security_enabled', sa.Boolean(), nullable=False),
    sa.Column('allowed_address_pairs', stratus.core.db.JSONText(), nullable=False),
    sa.Column('binding_host_id', sa.String(length=255), nullable=False),
    sa.Column('binding_vif_type', sa.String(length=64), nullable=False),
    sa.Column('binding_vnic_type', sa.String(length=64), nullable=False),
    sa.Column('binding_profile', stratus.core.db.JSONText(), nullable=False),
    sa.Column('binding_vif_details', stratus.core.db.JSONText(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('tags', stratus.core.db.JSONText(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['network_id'], ['network_network.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('mac_address')
    )
    with op.batch_alter_table('network_port', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_port_binding_host_id'), ['binding_host_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_port_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_port_device_owner'), ['device_owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_port_network_id'), ['network_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_port_project_id'), ['project_id'], unique=False)

    op.create_table('network_security_group_rule',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('security_group_id', sa.String(length=36), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('ethertype', sa.String(length=8), nullable=False),
    sa.Column('protocol', sa.String(length=40), nullable=True),
    sa.Column('port_range_min', sa.Integer(), nullable=True),
    sa.Column('port_range_max', sa.Integer(), nullable=True),
    sa.Column('remote_ip_prefix', sa.String(length=64), nullable=True),
    sa.Column('remote_group_id', sa.String(length=36), nullable=True),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['remote_group_id'], ['network_security_group.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['security_group_id'], ['network_security_group.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('security_group_id', 'fingerprint')
    )
    with op.batch_alter_table('network_security_group_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_security_group_rule_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_security_group_rule_remote_group_id'), ['remote_group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_security_group_rule_security_group_id'), ['security_group_id'], unique=False)

    op.create_table('network_segment',
    sa.Column('network_type', sa.String(length=16), nullable=False),
    sa.Column('physical_network', sa.String(length=64), nullable=False),
    sa.Column('segmentation_id', sa.Integer(), nullable=False),
    sa.Column('network_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['network_id'], ['network_network.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('network_type', 'physical_network', 'segmentation_id')
    )
    with op.batch_alter_table('network_segment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_segment_network_id'), ['network_id'], unique=False)

    op.create_table('network_subnet',
    sa.Column('network_id', sa.String(length=36), nullable=False),
    sa.Column('ip_version', sa.Integer(), nullable=False),
    sa.Column('cidr', sa.String(length=64), nullable=False),
    sa.Column('gateway_ip', sa.String(length=64), nullable=True),
    sa.Column('enable_dhcp', sa.Boolean(), nullable=False),
    sa.Column('ipv6_ra_mode', sa.String(length=16), nullable=True),
    sa.Column('ipv6_address_mode', sa.String(length=16), nullable=True),
    sa.Column('allocation_pools', stratus.core.db.JSONText(), nullable=False),
    sa.Column('dns_nameservers', stratus.core.db.JSONText(), nullable=False),
    sa.Column('host_routes', stratus.core.db.JSONText(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('tags', stratus.core.db.JSONText(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['network_id'], ['network_network.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('network_subnet', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_subnet_network_id'), ['network_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_subnet_project_id'), ['project_id'], unique=False)

    op.create_table('network_ip_allocation',
    sa.Column('subnet_id', sa.String(length=36), nullable=False),
    sa.Column('ip_address', sa.String(length=64), nullable=False),
    sa.Column('port_id', sa.String(length=36), nullable=False),
    sa.Column('network_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['port_id'], ['network_port.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subnet_id'], ['network_subnet.id'], ),
    sa.PrimaryKeyConstraint('subnet_id', 'ip_address')
    )
    with op.batch_alter_table('network_ip_allocation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_ip_allocation_network_id'), ['network_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_ip_allocation_port_id'), ['port_id'], unique=False)

    op.create_table('network_port_security_group',
    sa.Column('port_id', sa.String(length=36), nullable=False),
    sa.Column('security_group_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['port_id'], ['network_port.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['security_group_id'], ['network_security_group.id'], ),
    sa.PrimaryKeyConstraint('port_id', 'security_group_id')
    )
    with op.batch_alter_table('network_port_security_group', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_port_security_group_security_group_id'), ['security_group_id'], unique=False)

    op.create_table('network_router',
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('gw_port_id', sa.String(length=36), nullable=True),
    sa.Column('enable_snat', sa.Boolean(), nullable=False),
    sa.Column('routes', stratus.core.db.JSONText(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('tags', stratus.core.db.JSONText(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['gw_port_id'], ['network_port.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('network_router', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_router_project_id'), ['project_id'], unique=False)

    op.create_table('network_floating_ip',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('tags', stratus.core.db.JSONText(), nullable=False),
    sa.Column('floating_network_id', sa.String(length=36), nullable=False),
    sa.Column('floating_ip_address', sa.String(length=64), nullable=False),
    sa.Column('floating_port_id', sa.String(length=36), nullable=False),
    sa.Column('fixed_port_id', sa.String(length=36), nullable=True),
    sa.Column('fixed_ip_address', sa.String(length=64), nullable=True),
    sa.Column('router_id', sa.String(length=36), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['fixed_port_id'], ['network_port.id'], ),
    sa.ForeignKeyConstraint(['floating_network_id'], ['network_network.id'], ),
    sa.ForeignKeyConstraint(['floating_port_id'], ['network_port.id'], ),
    sa.ForeignKeyConstraint(['router_id'], ['network_router.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('fixed_port_id', 'fixed_ip_address'),
    sa.UniqueConstraint('floating_port_id')
    )
    with op.batch_alter_table('network_floating_ip', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_floating_ip_fixed_port_id'), ['fixed_port_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_floating_ip_floating_network_id'), ['floating_network_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_floating_ip_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_network_floating_ip_router_id'), ['router_id'], unique=False)



def downgrade() -> None:
    
    with op.batch_alter_table('network_floating_ip', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_floating_ip_router_id'))
        batch_op.drop_index(batch_op.f('ix_network_floating_ip_project_id'))
        batch_op.drop_index(batch_op.f('ix_network_floating_ip_floating_network_id'))
        batch_op.drop_index(batch_op.f('ix_network_floating_ip_fixed_port_id'))

    op.drop_table('network_floating_ip')
    with op.batch_alter_table('network_router', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_router_project_id'))

    op.drop_table('network_router')
    with op.batch_alter_table('network_port_security_group', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_port_security_group_security_group_id'))

    op.drop_table('network_port_security_group')
    with op.batch_alter_table('network_ip_allocation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_ip_allocation_port_id'))
        batch_op.drop_index(batch_op.f('ix_network_ip_allocation_network_id'))

    op.drop_table('network_ip_allocation')
    with op.batch_alter_table('network_subnet', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_subnet_project_id'))
        batch_op.drop_index(batch_op.f('ix_network_subnet_network_id'))

    op.drop_table('network_subnet')
    with op.batch_alter_table('network_segment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_segment_network_id'))

    op.drop_table('network_segment')
    with op.batch_alter_table('network_security_group_rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_security_group_rule_security_group_id'))
        batch_op.drop_index(batch_op.f('ix_network_security_group_rule_remote_group_id'))
        batch_op.drop_index(batch_op.f('ix_network_security_group_rule_project_id'))

    op.drop_table('network_security_group_rule')
    with op.batch_alter_table('network_port', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_port_project_id'))
        batch_op.drop_index(batch_op.f('ix_network_port_network_id'))
        batch_op.drop_index(batch_op.f('ix_network_port_device_owner'))
        batch_op.drop_index(batch_op.f('ix_network_port_device_id'))
        batch_op.drop_index(batch_op.f('ix_network_port_binding_host_id'))

    op.drop_table('network_port')
    op.drop_table('network_default_security_group')
    with op.batch_alter_table('network_security_group', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_security_group_project_id'))

    op.drop_table('network_security_group')
    op.drop_table('network_quota')
    with op.batch_alter_table('network_network', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_network_shared'))
        batch_op.drop_index(batch_op.f('ix_network_network_project_id'))
        batch_op.drop_index(batch_op.f('ix_network_network_external'))

    op.drop_table('network_network')
    with op.batch_alter_table('network_agent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_agent_host'))

    op.drop_table('network_agent')
