"""The flow editor pages: list, editor (save, preview, publish), detail, BPMN import and export,
simulation, dry-run, migration, who may do what; and the flow diagram they draw."""

import json
import re
from xml.etree import ElementTree

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import translation

from eoms.accounts.roles import Role
from eoms.approvals.bpmn import export_bpmn, import_bpmn
from eoms.approvals.definition import parse_document
from eoms.approvals.diagram import flow_svg
from eoms.approvals.models import ApprovalDefinition, ApprovalInstance, ApprovalStep, DefinitionStatus, StepState
from eoms.approvals.services import publish_definition, save_definition
from eoms.approvals.subjects import get_adapter
from eoms.orders.state import OrderState
from eoms.testing.factories import UserFactory
from eoms.testing.world import SIMPLE_FLOW, publish_flow

SVG = "{http://www.w3.org/2000/svg}"
XSS = "<script>alert(1)</script>"


@pytest.fixture
def client_for():
    """A test client signed in as `user`, asking for English pages."""

    def make(user) -> Client:
        client = Client(HTTP_ACCEPT_LANGUAGE="en")
        client.force_login(user)
        return client

    return make


@pytest.fixture
def gm(db):
    return UserFactory(username="gm", display_name="General Manager", roles=[Role.FINANCE])


def review(node_id="review", name="Review"):
    return {"type": "approval", "id": node_id, "name": name, "approvers": {"source": "role", "role": "approver"}}


def big_orders_flow(gm_user, *, default_branch=True):
    """Review by the approvers; an amount of 500,000 or more also goes to the GM."""
    branches = [
        {
            "id": "large",
            "name": "Large",
            "when": {"any_of": [[{"field": "amount", "operator": "gte", "value": "500000"}]]},
            "nodes": [
                {
                    "type": "approval",
                    "id": "gm",
                    "name": "GM",
                    "approvers": {"source": "users", "users": [str(gm_user.pk)]},
                }
            ],
        },
        {"id": "small", "name": "Otherwise", "default": default_branch, "nodes": []},
    ]
    return {
        "nodes": [review(), {"type": "branch", "id": "amount", "name": "Amount", "branches": branches}],
        "on_reject": "rejected",
    }


def editor_data(flow, **overrides):
    data = {
        "name": "Big orders",
        "key": "big",
        "subject_type": "orders.order",
        "description": "",
        "priority": "10",
        "on_reject": flow.get("on_reject", "rejected"),
        "applies_when": "",
        "document": json.dumps(flow, ensure_ascii=False),
        "action": "save",
    }
    data.update(overrides)
    return data


def problems_of(response) -> list[tuple[str, str]]:
    """(node id, message) of every problem listed under the diagram."""
    html = response.content.decode()
    found = re.findall(r'<li class="flow-problem" data-node="([^"]*)">(.*?)</li>', html, re.S)
    return [(node, re.sub(r"<[^>]+>", "", text).strip()) for node, text in found]


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# ------------------------------------------------------------------------------------------------ list


def test_list_shows_each_flow_once_with_published_draft_priority_default_and_condition(world, gm, client_for):
    published = publish_flow(
        world.admin,
        big_orders_flow(gm),
        key="big",
        name="Big orders",
        priority=10,
        applies_when={"any_of": [[{"field": "amount", "operator": "gte", "value": "500000"}]]},
    )
    draft = save_definition(
        actor=world.admin, definition_id=published.pk, name="Big orders", document=big_orders_flow(gm), priority=10
    )

    response = client_for(world.admin).get(reverse("approvals:definitions"))

    assert response.status_code == 200
    rows = response.context["rows"]
    assert [r["key"] for r in rows] == ["big", "simple"]
    big, simple = rows
    assert (big["published"].revision, big["draft"].revision, big["revisions"]) == (1, 2, 2)
    assert big["applies"] == "contract amount ≥ 500,000"
    assert big["subject"] == "order"
    assert (simple["published"].revision, simple["draft"], simple["applies"]) == (1, None, "when no other flow applies")
    html = response.content.decode()
    assert reverse("approvals:definition_edit", args=[draft.pk]) in html
    assert 'id="new-flow"' in html and 'id="import-bpmn"' in html


def test_a_flow_without_condition_that_is_not_the_default_says_it_never_applies(world, client_for):
    publish_flow(world.admin, SIMPLE_FLOW, key="orphan", name="Orphan")
    rows = client_for(world.admin).get(reverse("approvals:definitions")).context["rows"]
    assert {r["key"]: r["applies"] for r in rows}["orphan"] == "never: no condition and not the default flow"


# ------------------------------------------------------------------------------------------------ editor


def test_the_new_flow_editor_carries_the_fields_choices_and_an_empty_document(world, client_for):
    response = client_for(world.admin).get(reverse("approvals:definition_new"))

    assert response.status_code == 200
    meta = response.context["meta"]
    fields = {f["name"]: f for f in meta["fields"]}
    assert fields["amount"]["type"] == "decimal"
    assert fields["kind"]["type"] == "choice" and fields["kind"]["choices"]
    assert meta["operators"]["choice"] == ["eq", "ne", "in", "not_in"]
    assert meta["operators"]["text"] == ["eq", "ne", "in", "not_in", "contains"]
    assert [e["name"] for e in meta["editable"]] == [
        "contract_amount",
        "estimated_cost",
        "tax_rate",
        "title",
        "description",
    ]
    assert ["approver", "Approver"] in meta["roles"]
    html = response.content.decode()
    assert 'id="flow-editor-meta"' in html and "approvals/editor.js" in html
    # Without JavaScript the document is there to edit as JSON.
    assert json.loads(response.context["form"]["document"].value()) == {"nodes": [], "on_reject": "rejected"}
    assert "<script>" not in html.split('id="flow-editor-meta"')[1].split("</script>")[0]


def test_create_a_flow_by_posting_its_json_document(world, gm, client_for):
    document = big_orders_flow(gm)
    response = client_for(world.admin).post(reverse("approvals:definition_new"), editor_data(document))

    definition = ApprovalDefinition.objects.get(key="big")
    assert response.status_code == 302
    assert response["Location"] == reverse("approvals:definition_edit", args=[definition.pk])
    assert (definition.status, definition.revision, definition.priority, definition.name) == (
        "draft",
        1,
        10,
        "Big orders",
    )
    assert parse_document(definition.document) == parse_document(document)
    page = client_for(world.admin).get(response["Location"])
    assert messages_of(page) == []  # the message went to the first client
    assert problems_of(page) == []


def test_save_shows_the_success_message_and_a_taken_key_on_its_field(world, gm, client_for):
    client = client_for(world.admin)
    response = client.post(reverse("approvals:definition_new"), editor_data(big_orders_flow(gm)), follow=True)
    assert messages_of(response) == ["Saved draft revision 1 of Big orders."]

    again = client.post(reverse("approvals:definition_new"), editor_data(big_orders_flow(gm)))
    assert again.status_code == 422
    assert again.context["form"].errors["key"] == ["The key big is taken."]
    assert ApprovalDefinition.objects.filter(key="big").count() == 1


def test_an_unreadable_document_is_not_saved_and_its_problems_name_the_node(world, client_for):
    document = {"nodes": [{**review(), "name": ""}], "on_reject": "rejected"}
    response = client_for(world.admin).post(reverse("approvals:definition_new"), editor_data(document))

    assert response.status_code == 422
    assert response.context["error"]["title"] == "The flow cannot be read"
    assert problems_of(response) == [("review", "review: name must not be empty.")]
    assert not ApprovalDefinition.objects.filter(key="big").exists()


def test_json_that_does_not_parse_stays_on_the_form_with_its_position(world, client_for):
    response = client_for(world.admin).post(
        reverse("approvals:definition_new"), editor_data({}, document='{"nodes": [')
    )
    assert response.status_code == 422
    assert response.context["form"].errors["document"] == [
        "The flow document is not valid JSON: Expecting value (line 1, column 12)."
    ]


def test_preview_returns_the_diagram_and_problems_naming_their_nodes(world, gm, client_for):
    document = big_orders_flow(gm, default_branch=False)
    response = client_for(world.admin).post(
        reverse("approvals:definition_preview"),
        {"document": json.dumps(document), "name": "Draft", "subject_type": "orders.order"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    assert problems_of(response) == [
        ("amount", "Amount: Branch “Amount”: exactly one branch must be the default (taken when no condition holds)."),
        ("small", "Otherwise: Branch “Otherwise”: give it a condition."),
    ]
    svg = ElementTree.fromstring(re.search(r"<svg.*</svg>", response.content.decode(), re.S).group(0))
    groups = {g.get("data-node"): g.get("class") for g in svg.iter(f"{SVG}g") if g.get("data-node")}
    assert groups["amount"] == "node branch problem"
    assert groups["small"] == "branch-label problem"
    assert groups["review"] == "node approval"
    assert groups["gm"] == "node approval"
    # Nothing was saved.
    assert ApprovalDefinition.objects.count() == 1


def test_preview_of_a_flow_without_problems_says_it_can_be_published(world, gm, client_for):
    response = client_for(world.admin).post(
        reverse("approvals:definition_preview"),
        {"document": json.dumps(big_orders_flow(gm)), "name": "Draft", "subject_type": "orders.order"},
    )
    assert problems_of(response) == []
    assert "No problems found: the flow can be published." in response.content.decode()


def test_preview_of_broken_json_and_of_a_bad_condition_in_words(world, client_for):
    client = client_for(world.admin)
    broken = client.post(reverse("approvals:definition_preview"), {"document": "{", "name": "x"})
    assert problems_of(broken) == [
        (
            "",
            "The flow document is not valid JSON: "
            "Expecting property name enclosed in double quotes (line 1, column 2).",
        )
    ]
    assert "The diagram appears when the flow can be read." in broken.content.decode()

    document = {"nodes": [review()], "on_reject": "rejected"}
    when = {"any_of": [[{"field": "amount", "operator": "gte", "value": "lots"}]]}
    response = client.post(
        reverse("approvals:definition_preview"),
        {"document": json.dumps(document), "applies_when": json.dumps(when), "name": "x"},
    )
    assert problems_of(response) == [("", "Branch “Applies when”: “lots” is not a number.")]


def test_editing_a_published_revision_saves_a_new_draft_and_says_so(world, client_for):
    simple = ApprovalDefinition.objects.get(key="simple")
    client = client_for(world.admin)

    page = client.get(reverse("approvals:definition_edit", args=[simple.pk]))
    assert "saving makes revision 2 as a draft" in page.content.decode()

    document = {"nodes": [review(name="Review by approvers")], "on_reject": "quoting"}
    data = editor_data(document, name="Simple review", version=str(simple.version), is_default="on")
    response = client.post(reverse("approvals:definition_edit", args=[simple.pk]), data, follow=True)

    draft = ApprovalDefinition.objects.get(key="simple", revision=2)
    assert draft.status == DefinitionStatus.DRAFT
    assert draft.document["nodes"][0]["name"] == "Review by approvers"
    assert draft.document["on_reject"] == "quoting"  # from the select, over the JSON
    simple.refresh_from_db()
    assert (simple.status, simple.document["nodes"][0]["name"]) == ("published", "Review")
    assert response.redirect_chain[-1][0] == reverse("approvals:definition_edit", args=[draft.pk])
    assert messages_of(response) == ["Saved as draft revision 2 of Simple review; revision 1 is unchanged."]

    # The published revision's editor now opens the draft.
    again = client.get(reverse("approvals:definition_edit", args=[simple.pk]), follow=True)
    assert again.redirect_chain[-1][0] == reverse("approvals:definition_edit", args=[draft.pk])
    assert messages_of(again) == ["Revision 2 is the draft of this flow; you are editing it."]


def test_a_stale_save_reloads_the_editor_with_a_message(world, client_for):
    draft = save_definition(actor=world.admin, key="d", name="Draft", document=SIMPLE_FLOW)
    save_definition(actor=world.admin, definition_id=draft.pk, name="Draft (theirs)", document=SIMPLE_FLOW)
    data = editor_data(SIMPLE_FLOW, name="Draft (mine)", version=str(draft.version))

    response = client_for(world.admin).post(reverse("approvals:definition_edit", args=[draft.pk]), data, follow=True)

    assert messages_of(response) == [
        "Draft (theirs) v1 was changed by someone else while you were editing. The editor now shows the saved flow; "
        "make your change again."
    ]
    draft.refresh_from_db()
    assert draft.name == "Draft (theirs)"


# ------------------------------------------------------------------------------------------------ publish


def test_publish_with_problems_lists_them_and_publishes_nothing(world, gm, client_for):
    draft = save_definition(
        actor=world.admin, key="big", name="Big", document=big_orders_flow(gm, default_branch=False)
    )

    response = client_for(world.admin).post(
        reverse("approvals:definition_publish", args=[draft.pk]), {"version": draft.version}
    )

    assert response.status_code == 422
    assert response.context["error"]["items"] == [
        "Branch “Amount”: exactly one branch must be the default (taken when no condition holds).",
        "Branch “Otherwise”: give it a condition.",
    ]
    assert [n for n, _m in problems_of(response)] == ["amount", "small"]
    draft.refresh_from_db()
    assert draft.status == DefinitionStatus.DRAFT
    assert not ApprovalDefinition.objects.filter(key="big", status=DefinitionStatus.PUBLISHED).exists()


def test_save_and_publish_with_problems_keeps_the_draft_and_lists_the_problems(world, gm, client_for):
    document = big_orders_flow(gm, default_branch=False)
    response = client_for(world.admin).post(
        reverse("approvals:definition_new"), editor_data(document, action="publish"), follow=True
    )

    draft = ApprovalDefinition.objects.get(key="big")
    assert draft.status == DefinitionStatus.DRAFT
    assert messages_of(response) == [
        "Saved draft revision 1 of Big orders. It was not published: 2 problem(s), listed with the diagram."
    ]
    assert [n for n, _m in problems_of(response)] == ["amount", "small"]


def test_publish_from_the_detail_page_and_from_the_editor(world, gm, client_for):
    client = client_for(world.admin)
    draft = save_definition(actor=world.admin, key="big", name="Big", document=big_orders_flow(gm))
    response = client.post(
        reverse("approvals:definition_publish", args=[draft.pk]), {"version": draft.version}, follow=True
    )
    assert messages_of(response) == ["Published revision 1 of Big."]
    draft.refresh_from_db()
    assert (draft.status, draft.published_by) == ("published", world.admin)

    response = client.post(
        reverse("approvals:definition_new"), editor_data(big_orders_flow(gm), key="big2", action="publish"), follow=True
    )
    published = ApprovalDefinition.objects.get(key="big2")
    assert published.status == DefinitionStatus.PUBLISHED
    assert response.redirect_chain[-1][0] == reverse("approvals:definition", args=[published.pk])
    assert messages_of(response) == ["Published revision 1 of Big orders."]


def test_publishing_a_stale_version_is_refused(world, client_for):
    draft = save_definition(actor=world.admin, key="d", name="Draft", document=SIMPLE_FLOW)
    response = client_for(world.admin).post(
        reverse("approvals:definition_publish", args=[draft.pk]), {"version": draft.version - 1}
    )
    assert response.status_code == 409
    assert response.context["error"]["message"] == "Draft v1 was changed by someone else; reload it."
    draft.refresh_from_db()
    assert draft.status == DefinitionStatus.DRAFT


# ------------------------------------------------------------------------------------------------ detail


def test_detail_shows_diagram_revisions_and_links(world, client_for):
    simple = ApprovalDefinition.objects.get(key="simple")
    v2 = publish_definition(
        actor=world.admin,
        definition_id=save_definition(
            actor=world.admin, definition_id=simple.pk, name="Simple review", document=SIMPLE_FLOW, is_default=True
        ).pk,
    )
    response = client_for(world.admin).get(reverse("approvals:definition", args=[v2.pk]))

    assert response.status_code == 200
    assert [(r.revision, r.status) for r in response.context["revisions"]] == [(2, "published"), (1, "superseded")]
    html = response.content.decode()
    for name in ("definition_edit", "definition_simulate", "definition_dry_run", "definition_export"):
        assert reverse(f"approvals:{name}", args=[v2.pk]) in html
    assert 'id="publish-flow"' not in html  # published already
    assert 'class="eoms-flow-diagram"' in html and 'data-node="review"' in html


# ------------------------------------------------------------------------------------------------ BPMN


def test_export_downloads_bpmn_that_imports_back_to_the_same_document(world, gm, client_for):
    definition = publish_flow(world.admin, big_orders_flow(gm), key="big", name="Big orders")
    response = client_for(world.auditor).get(reverse("approvals:definition_export", args=[definition.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/xml; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="big-v1.bpmn"'
    doc, info = import_bpmn(response.content)
    assert doc == parse_document(definition.document)
    assert info == {"key": "big", "name": "Big orders"}


def test_import_of_a_bad_file_shows_the_translated_error_and_saves_nothing(world, client_for):
    upload = SimpleUploadedFile("flow.bpmn", b"this is not xml", content_type="application/xml")
    response = client_for(world.admin).post(reverse("approvals:definition_import"), {"file": upload})

    assert response.status_code == 422
    errors = response.context["form"].errors["file"]
    assert len(errors) == 1 and errors[0].startswith("The file is not XML")
    assert ApprovalDefinition.objects.count() == 1


def test_import_saves_a_draft_new_or_as_the_next_revision(world, client_for):
    data = export_bpmn(parse_document(SIMPLE_FLOW), key="imported", name="Imported review")
    client = client_for(world.admin)

    response = client.post(
        reverse("approvals:definition_import"), {"file": SimpleUploadedFile("a.bpmn", data)}, follow=True
    )
    new = ApprovalDefinition.objects.get(key="imported")
    assert (new.revision, new.status, new.name) == (1, "draft", "Imported review")
    assert response.redirect_chain[-1][0] == reverse("approvals:definition_edit", args=[new.pk])
    assert messages_of(response) == ["Imported Imported review as draft revision 1; check it and publish it."]

    # While that draft exists, a second import under its key is refused.
    again = client.post(reverse("approvals:definition_import"), {"file": SimpleUploadedFile("a.bpmn", data)})
    assert again.status_code == 422
    assert again.context["form"].errors["key"] == [
        "The flow imported already has a draft (revision 1); publish it, or import under another key."
    ]

    # Under the key of a published flow it becomes that flow's next draft, keeping its settings.
    response = client.post(
        reverse("approvals:definition_import"), {"file": SimpleUploadedFile("a.bpmn", data), "key": "simple"}
    )
    assert response.status_code == 302
    draft = ApprovalDefinition.objects.get(key="simple", revision=2)
    assert (draft.status, draft.is_default, draft.name) == ("draft", True, "Imported review")


# ------------------------------------------------------------------------------------------------ simulation


def test_simulation_shows_who_approves_in_order_and_why(world, gm, client_for):
    definition = publish_flow(world.admin, big_orders_flow(gm), key="big", name="Big orders")
    large = world.order(OrderState.QUOTING, amount="800000.00", title="Large works")
    small = world.order(OrderState.QUOTING, amount="1000.00", title="Small works")
    client = client_for(world.admin)
    url = reverse("approvals:definition_simulate", args=[definition.pk])

    search = client.get(url, {"q": "Large"})
    assert [s.id for s in search.context["results"]] == [str(large.pk)]

    response = client.get(url, {"subject": str(large.pk)})
    assert response.status_code == 200
    stages = response.context["result"]["stages"]
    assert [(s["name"], [a["user"].username for a in s["approvers"]], s["reason"]) for s in stages] == [
        ("Review", ["approver1"], ""),
        ("GM", ["gm"], "contract amount ≥ 500,000 → Large"),
    ]
    assert [a["reason"] for a in stages[0]["approvers"]] == ["has the role Approver"]
    html = response.content.decode()
    assert "contract amount ≥ 500,000 → Large" in html
    assert "On Big orders v1 (chosen for the simulation)." in html
    assert "Submitted today, this order would go to Simple review v1 (default flow)." in html

    response = client.get(url, {"subject": str(small.pk)})
    assert [s["name"] for s in response.context["result"]["stages"]] == ["Review"]


def test_simulation_of_an_order_the_user_may_not_see_is_not_found(world, client_for):
    definition = ApprovalDefinition.objects.get(key="simple")
    order = world.order(OrderState.QUOTING)
    response = client_for(world.outsider).get(
        reverse("approvals:definition_simulate", args=[definition.pk]), {"subject": str(order.pk)}
    )
    assert response.status_code == 404
    assert response.context["result"] is None
    assert response.context["error"]["message"] == "No such order."


def test_simulation_asks_for_the_picked_approver(world, client_for):
    document = {
        "nodes": [{"type": "approval", "id": "pick", "name": "Chosen", "approvers": {"source": "picked"}}],
        "on_reject": "rejected",
    }
    definition = publish_flow(world.admin, document, key="picked", name="Picked")
    order = world.order(OrderState.QUOTING)
    url = reverse("approvals:definition_simulate", args=[definition.pk])
    response = client_for(world.admin).get(url, {"subject": str(order.pk), "picked-pick": str(world.finance.pk)})
    assert 'name="picked-pick"' in response.content.decode()
    stage = response.context["result"]["stages"][0]
    assert [a["user"] for a in stage["approvers"]] == [world.finance]


# ------------------------------------------------------------------------------------------------ dry-run


def test_dry_run_lists_recent_orders_and_highlights_those_routed_differently(world, gm, client_for):
    simple = ApprovalDefinition.objects.get(key="simple")
    draft = save_definition(
        actor=world.admin, definition_id=simple.pk, name="Simple review", document=big_orders_flow(gm), is_default=True
    )
    large = world.order(amount="800000.00", title="Large works")
    small = world.order(amount="1000.00", title="Small works")

    response = client_for(world.admin).get(reverse("approvals:definition_dry_run", args=[draft.pk]), {"limit": "10"})

    assert response.status_code == 200
    rows = response.context["rows"]
    approver = str(world.approver)
    assert [(r["subject"].id, r["differs"]) for r in rows] == [(str(small.pk), False), (str(large.pk), True)]
    assert rows[1]["current"] == [{"node": "Review", "users": [approver]}]
    assert rows[1]["draft"] == [{"node": "Review", "users": [approver]}, {"node": "GM", "users": ["General Manager"]}]
    assert (rows[1]["current_flow"], rows[1]["draft_flow"]) == ("Simple review v1", "Simple review v2")
    html = response.content.decode()
    assert "1 of 2 orders would route differently" in html
    assert html.count("dry-run-row table-warning differs") == 1


def test_dry_run_limit_is_from_10_to_500(world, client_for):
    definition = ApprovalDefinition.objects.get(key="simple")
    url = reverse("approvals:definition_dry_run", args=[definition.pk])
    response = client_for(world.admin).get(url, {"limit": "5"})
    assert response.status_code == 422
    assert response.context["form"].errors["limit"] == ["Ensure this value is greater than or equal to 10."]
    assert response.context["ran"] is False
    default = client_for(world.admin).get(url)
    assert (default.status_code, default.context["form"].cleaned_data["limit"]) == (200, 50)


# ------------------------------------------------------------------------------------------------ migration


def test_migration_page_previews_and_moves_a_running_approval(world, client_for):
    v1 = ApprovalDefinition.objects.get(key="simple")
    order = world.order(OrderState.PENDING_APPROVAL)
    instance = ApprovalInstance.objects.get(subject_id=str(order.pk))
    document = {"nodes": [review(name="Review again"), review("extra", "Extra")], "on_reject": "rejected"}
    v2 = publish_definition(
        actor=world.admin,
        definition_id=save_definition(
            actor=world.admin, definition_id=v1.pk, name="Simple review", document=document, is_default=True
        ).pk,
    )
    client = client_for(world.admin)
    url = reverse("approvals:definition_migrate", args=[v1.pk])

    page = client.get(url)
    assert page.status_code == 200
    assert page.context["target"] == v2
    [row] = page.context["rows"]
    assert row["instance"] == instance
    assert row["moves"] == [{"node_id": "review", "from": "Review", "to": "Review again", "stays": True}]
    assert row["restart"] is False
    assert "Review: stays at Review again" in page.content.decode()

    response = client.post(url, {"to": str(v2.pk), "instances": [str(instance.pk)]}, follow=True)

    instance.refresh_from_db()
    assert instance.definition == v2
    step = ApprovalStep.objects.get(instance=instance, state=StepState.ACTIVE)
    assert (step.node_id, step.node_name) == ("review", "Review again")
    assert messages_of(response) == ["Moved 1 approval(s) to Simple review v2; 0 restarted from the beginning."]
    assert response.redirect_chain[-1][0] == reverse("approvals:definition", args=[v2.pk])


def test_migration_without_a_checked_approval_moves_nothing(world, client_for):
    v1 = ApprovalDefinition.objects.get(key="simple")
    order = world.order(OrderState.PENDING_APPROVAL)
    instance = ApprovalInstance.objects.get(subject_id=str(order.pk))
    v2 = publish_definition(
        actor=world.admin,
        definition_id=save_definition(
            actor=world.admin, definition_id=v1.pk, name="Simple review", document=SIMPLE_FLOW, is_default=True
        ).pk,
    )
    response = client_for(world.admin).post(reverse("approvals:definition_migrate", args=[v1.pk]), {"to": str(v2.pk)})
    assert response.status_code == 422
    assert response.context["form"].errors["instances"] == ["This field is required."]
    instance.refresh_from_db()
    assert instance.definition == v1


def test_migration_page_of_the_published_revision_has_no_target(world, client_for):
    simple = ApprovalDefinition.objects.get(key="simple")
    response = client_for(world.admin).get(reverse("approvals:definition_migrate", args=[simple.pk]))
    assert response.status_code == 200
    assert response.context["target"] is None
    assert 'id="no-target"' in response.content.decode()


# ------------------------------------------------------------------------------------------------ who may


WRITE_PAGES = [
    ("get", "definition_new", False),
    ("post", "definition_new", False),
    ("get", "definition_import", False),
    ("post", "definition_preview", False),
    ("get", "definition_edit", True),
    ("post", "definition_edit", True),
    ("post", "definition_publish", True),
    ("get", "definition_dry_run", True),
    ("get", "definition_migrate", True),
    ("post", "definition_migrate", True),
]
READ_PAGES = ["definition", "definition_export", "definition_simulate"]


@pytest.mark.parametrize("role", ["pm", "approver", "finance", "auditor"])
def test_readers_read_every_flow_page_and_change_nothing(world, client_for, role):
    client = client_for(getattr(world, role))
    draft = save_definition(actor=world.admin, key="d", name="Draft", document=SIMPLE_FLOW)
    listing = client.get(reverse("approvals:definitions"))
    assert listing.status_code == 200
    assert 'id="new-flow"' not in listing.content.decode()
    for name in READ_PAGES:
        assert client.get(reverse(f"approvals:{name}", args=[draft.pk])).status_code == 200, name
    detail = client.get(reverse("approvals:definition", args=[draft.pk])).content.decode()
    for button in ('id="edit-flow"', 'id="publish-flow"', 'id="dry-run-flow"'):
        assert button not in detail
    for method, name, with_id in WRITE_PAGES:
        url = reverse(f"approvals:{name}", args=[draft.pk] if with_id else [])
        assert getattr(client, method)(url, {"version": draft.version}).status_code == 403, (method, name)
    draft.refresh_from_db()
    assert (draft.status, draft.version) == ("draft", 1)


def test_users_who_may_not_read_flows_get_403_on_the_list_and_404_on_a_flow(world, client_for):
    client = client_for(world.engineer)
    simple = ApprovalDefinition.objects.get(key="simple")
    assert client.get(reverse("approvals:definitions")).status_code == 403
    for name in READ_PAGES + ["definition_edit", "definition_publish", "definition_migrate"]:
        method = "post" if name == "definition_publish" else "get"
        assert getattr(client, method)(reverse(f"approvals:{name}", args=[simple.pk])).status_code == 404, name
    assert client.get(reverse("approvals:definition_new")).status_code == 403


def test_an_unknown_flow_is_404_and_anonymous_users_go_to_login(world, client_for):
    missing = "01900000-0000-7000-8000-000000000000"
    assert client_for(world.admin).get(reverse("approvals:definition", args=[missing])).status_code == 404
    response = Client().get(reverse("approvals:definitions"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_names_are_escaped_on_every_page(world, client_for):
    document = {"nodes": [review(name=XSS)], "on_reject": "rejected"}
    definition = publish_flow(world.admin, document, key="x", name=XSS)
    client = client_for(world.admin)
    for name in ("definition", "definition_simulate"):
        html = client.get(reverse(f"approvals:{name}", args=[definition.pk])).content.decode()
        assert XSS not in html
    assert XSS not in client.get(reverse("approvals:definitions")).content.decode()
    editor = client.get(reverse("approvals:definition_edit", args=[definition.pk]))
    assert XSS not in editor.content.decode()


# ------------------------------------------------------------------------------------------------ diagram


@pytest.fixture
def english():
    with translation.override("en"):
        yield


def _svg(doc, **kw) -> ElementTree.Element:
    return ElementTree.fromstring(flow_svg(doc, **kw))


def _texts(group) -> list[str]:
    return [t.text for t in group.iter(f"{SVG}text")]


def test_diagram_draws_start_nodes_branches_and_end_top_to_bottom(world, gm, english):
    fields = {f.name: f for f in get_adapter("orders.order").fields()}
    root = _svg(big_orders_flow(gm), fields=fields, user_names={str(gm.pk): "General Manager"})
    groups = {g.get("data-node"): g for g in root.iter(f"{SVG}g") if g.get("data-node")}

    assert list(groups) == ["start", "review", "amount", "large", "gm", "small", "end"]
    assert _texts(groups["review"]) == ["Review", "Role: Approver", "Any one approves"]
    assert _texts(groups["gm"]) == ["GM", "General Manager", "Any one approves"]
    assert _texts(groups["amount"]) == ["Amount"]
    assert _texts(groups["large"]) == ["contract amount ≥ 500,000"]
    assert _texts(groups["small"]) == ["otherwise"]
    assert groups["small"].get("class") == "branch-label default"

    def top(node):
        shape = groups[node].find(f"{SVG}rect")
        return (
            float(shape.get("y"))
            if shape is not None
            else float(groups[node].find(f"{SVG}path").get("d")[1:].split(",")[1].split(" ")[0])
        )

    assert top("start") < top("review") < top("amount") < top("large") < top("gm") < top("end")
    # The two branches stand side by side.
    large_x = float(groups["large"].find(f"{SVG}rect").get("x"))
    small_x = float(groups["small"].find(f"{SVG}rect").get("x"))
    assert large_x < small_x and top("large") == top("small")


def test_diagram_marks_problem_and_active_nodes_and_is_deterministic(english):
    doc = {
        "nodes": [
            review(),
            {
                "type": "parallel",
                "id": "both",
                "name": "Both",
                "branches": [
                    {"id": "p1", "name": "Left", "nodes": [review("a", "A")]},
                    {
                        "id": "p2",
                        "name": "Right",
                        "nodes": [
                            {
                                "type": "cc",
                                "id": "c",
                                "name": "Copy",
                                "recipients": {"source": "project_role", "project_role": "pm"},
                            }
                        ],
                    },
                ],
            },
        ],
        "on_reject": "rejected",
    }
    svg = flow_svg(doc, problems_nodes={"a", "p2"}, active_nodes={"review"})
    assert svg == flow_svg(doc, problems_nodes={"p2", "a"}, active_nodes={"review"})
    root = ElementTree.fromstring(svg)
    groups = {g.get("data-node"): g for g in root.iter(f"{SVG}g") if g.get("data-node")}
    assert groups["review"].get("class") == "node approval active"
    assert groups["review"].get("aria-current") == "step"
    assert groups["a"].get("class") == "node approval problem"
    assert groups["p2"].get("class") == "branch-label problem"
    assert groups["both"].get("class") == "node parallel"
    assert _texts(groups["both"]) == ["⇉ Both"]
    assert _texts(groups["c"]) == ["Copy", "CC: The project's PM"]


def test_diagram_escapes_text_and_cuts_long_names(english):
    long_name = "审批" * 40
    doc = {"nodes": [review(name=XSS), review("b", long_name)], "on_reject": "rejected"}
    svg = flow_svg(doc)
    assert XSS not in svg and "&lt;script&gt;" in svg
    root = ElementTree.fromstring(svg)
    b = next(g for g in root.iter(f"{SVG}g") if g.get("data-node") == "b")
    name = _texts(b)[0]
    assert name.endswith("…") and len(name) < 20
    assert b.find(f"{SVG}title").text.startswith(f"{long_name}: Role: Approver")


def test_diagram_modes_and_sources_in_words(english):
    def node(i, approvers, **kw):
        return {"type": "approval", "id": f"n{i}", "name": f"N{i}", "approvers": approvers, **kw}

    doc = {
        "nodes": [
            node(1, {"source": "manager", "levels": 2, "chain": True}, mode="all", if_empty="admins"),
            node(2, {"source": "manager", "levels": 3}, mode="quorum", quorum={"percent": 60}, if_empty="admins"),
            node(3, {"source": "picked"}, mode="sequence", sla_hours="8", on_timeout="escalate"),
            node(
                4,
                {"source": "field", "field": "project_manager"},
                mode="quorum",
                quorum={"count": 2},
                if_empty="approve",
            ),
            node(5, {"source": "manager"}, if_empty="admins"),
        ],
        "on_reject": "rejected",
    }
    root = _svg(doc)
    texts = {g.get("data-node"): _texts(g)[1:] for g in root.iter(f"{SVG}g") if g.get("data-node", "").startswith("n")}
    assert texts == {
        "n1": ["Managers up to level 2, in turn", "All must approve"],
        "n2": ["The manager 3 levels up", "Quorum: 60% of approvers"],
        "n3": ["Picked at submission", "One after another · SLA 8 h"],
        "n4": ["Field: project_manager", "Quorum: 2 approvals"],
        "n5": ["The initiator's manager", "Any one approves"],
    }


def test_simulation_by_an_admin_applies_the_self_approval_guard_to_the_order_creator(world, client_for):
    # The PM created the order, so the PM may not approve it: an administrator's simulation must
    # show the route the PM's submission would take, not the administrator's.
    document = {
        "nodes": [
            {
                "type": "approval",
                "id": "own",
                "name": "Named",
                "approvers": {"source": "users", "users": [str(world.pm.pk), str(world.approver.pk)]},
            }
        ],
        "on_reject": "rejected",
    }
    definition = publish_flow(world.admin, document, key="own", name="Own")
    order = world.order(OrderState.QUOTING)
    response = client_for(world.admin).get(
        reverse("approvals:definition_simulate", args=[definition.pk]), {"subject": str(order.pk)}
    )
    [stage] = response.context["result"]["stages"]
    assert [a["user"] for a in stage["approvers"]] == [world.approver]
