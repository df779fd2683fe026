"""Use cases. Depends on notify.domain and notify.ports only."""
