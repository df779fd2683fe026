"""The whole notification store on PostgreSQL (asyncpg): every interface of ``ports.store`` by its caller's
module — ``notifications.py``, ``ledger.py``, ``operator.py``, ``sweeps.py`` — in one object, as the tests'
contract suite and the fake see it. Every public method is one transaction.

Status changes are conditional UPDATEs whose ``WHERE status = ANY(...)`` comes from the domain's status
machine, so a change the machine forbids matches no row instead of overwriting anything.
"""

from __future__ import annotations

import asyncpg

from notify.adapters.postgres.ledger import PgDeliveryLedger
from notify.adapters.postgres.notifications import PgNotifications
from notify.adapters.postgres.operator import PgOperatorActions
from notify.adapters.postgres.outbox import PgOutbox
from notify.adapters.postgres.sweeps import PgSweeps


class PgNotificationStore(PgNotifications, PgDeliveryLedger, PgOperatorActions, PgSweeps):
    def __init__(self, pool: asyncpg.Pool) -> None:
        PgNotifications.__init__(self, pool)
        PgDeliveryLedger.__init__(self, pool)
        PgOperatorActions.__init__(self, pool)
        PgSweeps.__init__(self, pool)


__all__ = ["PgNotificationStore", "PgOutbox"]
