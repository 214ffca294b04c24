from eoms.core.audit import verify_chain
from eoms.core.models import AuditEntry, OutboxMessage
from eoms.orders.state import OrderState


def test_walk_to_settled_leaves_intact_chain(world):
    order = world.order(OrderState.SETTLED)
    assert order.state == OrderState.SETTLED
    assert order.history.count() == 10
    assert verify_chain() is None
    assert AuditEntry.objects.count() == OutboxMessage.objects.count()
