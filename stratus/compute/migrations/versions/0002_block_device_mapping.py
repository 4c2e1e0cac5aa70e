"""compute block device mappings (volumes attached to instances)

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql')


def upgrade() -> None:
    op.create_table(
        'compute_block_device_mapping',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('instance_id', sa.String(length=36), nullable=False),
        sa.Column('volume_id', sa.String(length=36), nullable=False),
        sa.Column('device_name', sa.String(length=255), nullable=False),
        sa.Column('boot_index', sa.Integer(), nullable=True),
        sa.Column('source_type', sa.String(length=32), nullable=False),
        sa.Column('delete_on_termination', sa.Boolean(), nullable=False),
        sa.Column('attachment_id', sa.String(length=36), nullable=True),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['compute_instance.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('instance_id', 'device_name'),
    )
    with op.batch_alter_table('compute_block_device_mapping', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_compute_block_device_mapping_instance_id'), ['instance_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_compute_block_device_mapping_volume_id'), ['volume_id'], unique=False)


def downgrade() -> None:
    op.drop_table('compute_block_device_mapping')
