"""Hypervisor drivers: `base.Driver` is the interface, `fake` keeps instances in memory."""
