"""The web dashboard (Horizon's role): pages over the public OpenStack APIs, keeping nothing but sessions."""
