"""A small company for tests: one project with a member of every role, one outsider, and helpers
that walk an order through real services to any state."""

from dataclasses import dataclass
from decimal import Decimal

from eoms.accounts.roles import ProjectRole, Role
from eoms.orders import services
from eoms.orders.attachments import inspect_upload
from eoms.orders.models import Order
from eoms.orders.state import OrderState

from .factories import MembershipFactory, ProjectFactory, UserFactory

# The smallest valid PDF: enough for the content check (magic bytes %PDF-).
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

# The path to each state through the transition table, from INITIATED.
PATHS: dict[str, list[str]] = {
    OrderState.INITIATED: [],
    OrderState.QUOTING: ["start_quotation"],
    OrderState.PENDING_APPROVAL: ["start_quotation", "submit"],
    OrderState.APPROVED: ["start_quotation", "submit", "approve"],
    OrderState.REJECTED: ["start_quotation", "submit", "reject"],
    OrderState.SIGNED: ["start_quotation", "submit", "approve", "sign"],
    OrderState.IN_EXECUTION: ["start_quotation", "submit", "approve", "sign", "start_execution"],
    OrderState.ON_HOLD: ["start_quotation", "submit", "approve", "sign", "start_execution", "hold"],
    OrderState.PENDING_ACCEPTANCE: [
        "start_quotation",
        "submit",
        "approve",
        "sign",
        "start_execution",
        "request_acceptance",
    ],
    OrderState.ACCEPTED: [
        "start_quotation",
        "submit",
        "approve",
        "sign",
        "start_execution",
        "request_acceptance",
        "accept",
    ],
    OrderState.SETTLING: [
        "start_quotation",
        "submit",
        "approve",
        "sign",
        "start_execution",
        "request_acceptance",
        "accept",
        "start_settlement",
    ],
    OrderState.SETTLED: [
        "start_quotation",
        "submit",
        "approve",
        "sign",
        "start_execution",
        "request_acceptance",
        "accept",
        "start_settlement",
        "settle",
    ],
    OrderState.CANCELLED: ["cancel"],
}


@dataclass
class World:
    project: object
    other_project: object
    admin: object
    pm: object
    approver: object
    engineer: object
    finance: object
    auditor: object
    outsider: object  # a project manager of another project

    def actor_for(self, transition: str):
        return {
            "approve": self.approver,
            "reject": self.approver,
            "start_settlement": self.finance,
            "settle": self.finance,
        }.get(transition, self.pm)

    @property
    def by_role(self) -> dict:
        return {
            "admin": self.admin,
            "project_manager": self.pm,
            "approver": self.approver,
            "field_engineer": self.engineer,
            "finance": self.finance,
            "auditor": self.auditor,
            "outsider": self.outsider,
        }

    def order(
        self,
        state: str = OrderState.INITIATED,
        *,
        amount: str = "1000000.00",
        parent=None,
        title: str = "道路改造工程施工",
    ) -> Order:
        order = services.create_order(
            actor=self.pm,
            project=self.project,
            title=title,
            contract_amount=Decimal(amount),
            parent_id=parent.id if parent else None,
        )
        for name in PATHS[state]:
            self.walk(order, name)
        order.refresh_from_db()
        return order

    def walk(self, order: Order, name: str) -> Order:
        if name in ("approve", "reject"):
            return self.decide(order, name)
        attachments = []
        if name == "sign":
            attachments = [("signed_contract", inspect_upload("contract.pdf", PDF))]
        elif name == "accept":
            attachments = [("acceptance_report", inspect_upload("report.pdf", PDF))]
        return services.transition_order(
            actor=self.actor_for(name),
            order_id=order.id,
            name=name,
            comment="测试" if name in ("reject", "hold", "cancel") else "",
            attachments=attachments,
        )

    def attach(self, order: Order, kind: str = "drawing", name: str = "drawing.pdf"):
        return services.attach_file(actor=self.pm, order_id=order.id, kind=kind, upload=inspect_upload(name, PDF))

    def update(self, order: Order, **changes) -> Order:
        return services.update_order(actor=self.pm, order_id=order.id, changes=changes)

    def decide(self, order: Order, decision: str, *, comment: str = "测试") -> Order:
        """Decide the order's pending approval task(s) the way its approver would."""
        from eoms.approvals.models import ApprovalTask, TaskState
        from eoms.approvals.services import decide_task

        tasks = ApprovalTask.objects.filter(instance__subject_id=str(order.id), state=TaskState.PENDING).select_related(
            "assignee"
        )
        for task in tasks:
            decide_task(actor=task.assignee, task_id=task.id, decision=decision, comment=comment)
            order.refresh_from_db()
            if order.state != OrderState.PENDING_APPROVAL:
                break
        order.refresh_from_db()
        return order


# The flow every test world starts with: one node, any approver (role "approver") decides.
SIMPLE_FLOW = {
    "nodes": [
        {
            "type": "approval",
            "id": "review",
            "name": "Review",
            "approvers": {"source": "role", "role": "approver"},
            "mode": "any",
        }
    ],
    "on_reject": "rejected",
}


def publish_flow(admin, document=None, *, key: str = "simple", name: str = "Simple review", **kw):
    from eoms.approvals.services import publish_definition, save_definition

    definition = save_definition(actor=admin, key=key, name=name, document=document or SIMPLE_FLOW, **kw)
    return publish_definition(actor=admin, definition_id=definition.id)


def build_world() -> World:
    project = ProjectFactory()
    other = ProjectFactory()
    admin = UserFactory(username="admin1", roles=[Role.ADMIN])
    pm = UserFactory(username="pm1", roles=[Role.PROJECT_MANAGER])
    approver = UserFactory(username="approver1", roles=[Role.APPROVER])
    engineer = UserFactory(username="engineer1", roles=[Role.FIELD_ENGINEER])
    finance = UserFactory(username="finance1", roles=[Role.FINANCE])
    auditor = UserFactory(username="auditor1", roles=[Role.AUDITOR])
    outsider = UserFactory(username="pm2", roles=[Role.PROJECT_MANAGER])
    project.manager = pm
    project.save()
    MembershipFactory(user=pm, project=project, role=ProjectRole.PM)
    MembershipFactory(user=approver, project=project, role=ProjectRole.VIEWER)
    MembershipFactory(user=engineer, project=project, role=ProjectRole.ENGINEER)
    MembershipFactory(user=finance, project=project, role=ProjectRole.VIEWER)
    MembershipFactory(user=outsider, project=other, role=ProjectRole.PM)
    publish_flow(admin, is_default=True)
    return World(
        project=project,
        other_project=other,
        admin=admin,
        pm=pm,
        approver=approver,
        engineer=engineer,
        finance=finance,
        auditor=auditor,
        outsider=outsider,
    )
