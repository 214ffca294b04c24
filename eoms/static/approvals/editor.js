// The no-code approval flow editor (approvals/definitions/editor.html).
//
// The flow document lives as JSON in the form's textarea #id_document (and the applies-when
// condition in #id_applies_when): that is what the form saves, with or without this script. The
// script draws the document as nested cards, writes every change back to the textarea, and fires
// "eoms-changed" on #flow-preview, whose hx-post returns the live diagram and the problems. After
// each preview the cards of the nodes with problems are outlined and show their messages.
// Every text comes translated from the page (json_script #flow-editor-meta). No inline script.
(() => {
  "use strict";

  function start() {
    const root = document.getElementById("flow-nodes");
    const metaEl = document.getElementById("flow-editor-meta");
    const docField = document.getElementById("id_document");
    if (!root || !metaEl || !docField) return;
    const meta = JSON.parse(metaEl.textContent);
    const t = meta.i18n;
    const whenField = document.getElementById("id_applies_when");
    const onRejectField = document.getElementById("id_on_reject");
    const whenRoot = document.getElementById("applies-when-editor");
    const preview = document.getElementById("flow-preview");
    const jsonError = document.getElementById("flow-json-error");
    const fieldsByName = Object.fromEntries(meta.fields.map((f) => [f.name, f]));

    let doc = readDocument() || { nodes: [], on_reject: "rejected" };
    let when = readWhen();

    // ---------------------------------------------------------------- small helpers

    function h(tag, attrs, ...children) {
      const el = document.createElement(tag);
      for (const [k, v] of Object.entries(attrs || {})) {
        if (v === null || v === undefined || v === false) continue;
        if (k === "class") el.className = v;
        else if (k === "text") el.textContent = v;
        else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
        else if (k === "value") el.value = v;
        else if (k === "checked") el.checked = !!v;
        else if (v === true) el.setAttribute(k, "");
        else el.setAttribute(k, v);
      }
      for (const c of children.flat()) {
        if (c === null || c === undefined || c === false) continue;
        el.append(c instanceof Node ? c : document.createTextNode(String(c)));
      }
      return el;
    }

    function fmt(text, values) {
      return text.replace(/%\((\w+)\)s/g, (_m, k) => (k in values ? values[k] : ""));
    }

    let uid = 0;
    function nextUid(prefix) {
      uid += 1;
      return `fe-${prefix}-${uid}`;
    }

    function select(options, value, onchange, attrs) {
      const el = h("select", { class: "form-select form-select-sm", ...(attrs || {}), onchange: (e) => onchange(e.target.value) });
      for (const [v, label] of options) {
        el.append(h("option", { value: v, selected: String(v) === String(value ?? "") }, label));
      }
      el.value = value ?? "";
      return el;
    }

    function labelled(label, control, extraClass) {
      const id = control.id || nextUid("f");
      control.id = id;
      return h("div", { class: `mb-2 ${extraClass || ""}` }, h("label", { class: "form-label small mb-1", for: id }, label), control);
    }

    function checkbox(label, checked, onchange, attrs) {
      return h(
        "label",
        { class: "form-check mb-1" },
        h("input", { type: "checkbox", class: "form-check-input", checked, onchange: (e) => onchange(e.target.checked), ...(attrs || {}) }),
        h("span", { class: "form-check-label" }, label),
      );
    }

    function numberInput(value, onchange, attrs) {
      return h("input", {
        type: "number",
        class: "form-control form-control-sm",
        inputmode: "decimal",
        value: value === null || value === undefined ? "" : String(value),
        ...(attrs || {}),
        oninput: (e) => onchange(e.target.value),
      });
    }

    // ---------------------------------------------------------------- reading and writing the fields

    function readDocument() {
      try {
        const parsed = JSON.parse(docField.value || "{}");
        if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
          if (!Array.isArray(parsed.nodes)) parsed.nodes = [];
          return parsed;
        }
      } catch (_e) {
        return null;
      }
      return null;
    }

    function readWhen() {
      if (!whenField) return null;
      const text = (whenField.value || "").trim();
      if (!text) return null;
      try {
        const parsed = JSON.parse(text);
        return parsed && Array.isArray(parsed.any_of) && parsed.any_of.length ? parsed : null;
      } catch (_e) {
        return null;
      }
    }

    function changed() {
      if (onRejectField) doc.on_reject = onRejectField.value;
      docField.value = JSON.stringify(doc, null, 2);
      if (whenField) whenField.value = when ? JSON.stringify(when, null, 2) : "";
      if (jsonError) jsonError.classList.add("d-none");
      refreshPreview();
    }

    function refreshPreview() {
      if (preview && window.htmx) window.htmx.trigger(preview, "eoms-changed");
    }

    function rerender() {
      render();
      changed();
    }

    // ---------------------------------------------------------------- ids and new nodes

    // freshId looks at the document and at the node being built, which is not in it yet.
    let insertPending = null;

    function allIds() {
      const ids = new Set();
      if (insertPending) {
        ids.add(insertPending.id);
        for (const b of insertPending.branches || []) ids.add(b.id);
      }
      (function visit(nodes) {
        for (const n of nodes || []) {
          ids.add(n.id);
          for (const b of n.branches || []) {
            ids.add(b.id);
            visit(b.nodes);
          }
        }
      })(doc.nodes);
      return ids;
    }

    function freshId(prefix) {
      const ids = allIds();
      let n = 1;
      while (ids.has(`${prefix}_${n}`)) n += 1;
      return { id: `${prefix}_${n}`, n };
    }

    function newSource() {
      return { source: "role", users: [], role: "", project_role: "", levels: 1, chain: false, field: "" };
    }

    function newBranch(kind, index, isDefault) {
      const { id } = freshId("path");
      if (kind === "parallel") return { id, name: fmt(t.parallel_branch_name, { n: index }), when: null, default: false, nodes: [] };
      if (isDefault) return { id, name: t.otherwise, when: null, default: true, nodes: [] };
      return { id, name: fmt(t.branch_name, { n: index }), when: null, default: false, nodes: [] };
    }

    function newNode(type) {
      if (type === "approval") {
        const { id, n } = freshId("approval");
        return {
          type,
          id,
          name: fmt(t.new_approval, { n }),
          approvers: newSource(),
          mode: "any",
          quorum: null,
          sla_hours: null,
          remind_after_hours: null,
          on_timeout: "none",
          editable_fields: [],
          comment_required_on_reject: true,
          allow_self_approval: false,
          if_empty: "",
        };
      }
      if (type === "cc") {
        const { id, n } = freshId("cc");
        return { type, id, name: fmt(t.new_cc, { n }), recipients: newSource() };
      }
      const { id, n } = freshId(type);
      const node = { type, id, name: fmt(type === "branch" ? t.new_branch : t.new_parallel, { n }), branches: [] };
      // The branch's own ids must be taken before the next is chosen: add them one by one.
      insertPending = node;
      if (type === "branch") {
        node.branches.push(newBranch(type, 1, false));
        node.branches.push(newBranch(type, 2, true));
      } else {
        node.branches.push(newBranch(type, 1, false));
        node.branches.push(newBranch(type, 2, false));
      }
      insertPending = null;
      return node;
    }

    // ---------------------------------------------------------------- conditions

    function operatorsFor(field) {
      const spec = fieldsByName[field];
      return meta.operators[spec ? spec.type : "text"] || meta.operators.text;
    }

    function defaultRule() {
      const spec = meta.fields[0];
      return ruleFor(spec ? spec.name : "", null);
    }

    function ruleFor(fieldName, operator) {
      const spec = fieldsByName[fieldName];
      const ops = operatorsFor(fieldName);
      let op = operator && ops.includes(operator) ? operator : null;
      if (!op) op = spec && (spec.type === "decimal" || spec.type === "int") ? "gte" : spec && spec.type === "text" ? "contains" : "eq";
      const multi = op === "in" || op === "not_in";
      let value = multi ? [] : "";
      if (!multi && spec && spec.type === "choice" && spec.choices.length) value = spec.choices[0][0];
      return { field: fieldName, operator: op, value };
    }

    // Draws the condition held by get()/set(): OR of AND-groups. `set(null)` clears it.
    function conditionEditor(get, set, emptyText) {
      const box = h("div", { class: "flow-condition-groups" });
      const cond = get();
      if (!cond || !cond.any_of || !cond.any_of.length) {
        box.append(
          h("div", { class: "small text-secondary mb-1" }, emptyText || t.no_condition),
          h("button", { type: "button", class: "btn btn-sm btn-outline-primary add-rule", onclick: () => { set({ any_of: [[defaultRule()]] }); rerender(); } }, t.add_rule),
        );
        return box;
      }
      cond.any_of.forEach((group, gi) => {
        if (gi) box.append(h("div", { class: "flow-or text-uppercase small fw-bold text-secondary my-1" }, t.or));
        const groupEl = h("div", { class: "flow-group border rounded p-2" });
        if (group.length > 1) groupEl.append(h("div", { class: "small text-secondary mb-1" }, t.all_of));
        group.forEach((rule, ri) => {
          groupEl.append(ruleRow(rule, () => {
            group.splice(ri, 1);
            if (!group.length) cond.any_of.splice(gi, 1);
            if (!cond.any_of.length) set(null);
            rerender();
          }, ri > 0));
        });
        groupEl.append(h("button", { type: "button", class: "btn btn-sm btn-link px-0 add-and", onclick: () => { group.push(defaultRule()); rerender(); } }, t.add_and));
        box.append(groupEl);
      });
      box.append(h("button", { type: "button", class: "btn btn-sm btn-link px-0 add-or", onclick: () => { cond.any_of.push([defaultRule()]); rerender(); } }, t.add_or));
      return box;
    }

    function ruleRow(rule, remove, showAnd) {
      const spec = fieldsByName[rule.field];
      const row = h("div", { class: "flow-rule d-flex flex-wrap gap-1 align-items-center mb-1" });
      if (showAnd) row.append(h("span", { class: "small text-secondary me-1" }, t.and));
      const fieldOptions = meta.fields.map((f) => [f.name, f.label]);
      if (!spec) fieldOptions.unshift([rule.field, rule.field]);
      row.append(select(fieldOptions, rule.field, (v) => {
        Object.assign(rule, ruleFor(v, rule.operator));
        rerender();
      }, { class: "form-select form-select-sm w-auto rule-field", "aria-label": t.field }));
      const ops = operatorsFor(rule.field);
      row.append(select(ops.map((o) => [o, meta.operator_labels[o] || o]), rule.operator, (v) => {
        const wasMulti = Array.isArray(rule.value);
        const multi = v === "in" || v === "not_in";
        rule.operator = v;
        if (multi && !wasMulti) rule.value = rule.value === "" ? [] : [String(rule.value)];
        if (!multi && wasMulti) rule.value = rule.value.length ? String(rule.value[0]) : "";
        rerender();
      }, { class: "form-select form-select-sm w-auto rule-operator", "aria-label": t.operator }));
      row.append(valueInput(rule, spec));
      row.append(h("button", { type: "button", class: "btn btn-sm btn-ghost-danger remove-rule", title: t.remove_rule, "aria-label": t.remove_rule, onclick: remove }, "×"));
      return row;
    }

    function valueInput(rule, spec) {
      const multi = Array.isArray(rule.value);
      if (spec && spec.type === "choice") {
        if (!multi) {
          return select(spec.choices, rule.value, (v) => { rule.value = v; changed(); }, { class: "form-select form-select-sm w-auto rule-value", "aria-label": t.value });
        }
        const box = h("div", { class: "d-flex flex-wrap gap-2 rule-value" });
        for (const [v, label] of spec.choices) {
          box.append(checkbox(label, rule.value.includes(v), (on) => {
            rule.value = spec.choices.map((c) => c[0]).filter((c) => (c === v ? on : rule.value.includes(c)));
            changed();
          }));
        }
        return box;
      }
      const numeric = spec && (spec.type === "decimal" || spec.type === "int");
      const input = h("input", {
        type: "text",
        class: "form-control form-control-sm rule-value flow-value",
        inputmode: numeric && !multi ? "decimal" : null,
        placeholder: multi ? t.values_hint : t.value,
        "aria-label": t.value,
        value: multi ? rule.value.join(", ") : String(rule.value ?? ""),
        oninput: (e) => {
          const text = e.target.value;
          rule.value = multi ? text.split(/[,，]/).map((s) => s.trim()).filter((s) => s) : text.trim();
          changed();
        },
      });
      return input;
    }

    // ---------------------------------------------------------------- approvers

    function sourceEditor(src, isCc) {
      const box = h("div", { class: "flow-source" });
      box.append(labelled(isCc ? t.recipients : t.approvers, select(meta.sources, src.source, (v) => {
        Object.assign(src, newSource(), { source: v });
        if (v === "project_role") src.project_role = "pm";
        rerender();
      }, { class: "form-select form-select-sm source-select" })));
      if (src.source === "users") {
        const chips = h("div", { class: "d-flex flex-wrap gap-1 mb-1 user-chips" });
        const names = Object.fromEntries(meta.users);
        if (!src.users.length) chips.append(h("span", { class: "small text-secondary" }, t.no_users));
        src.users.forEach((id, i) => {
          const name = names[id] || id;
          chips.append(h("span", { class: "badge bg-azure-lt user-chip", "data-user": id }, name, " ",
            h("button", { type: "button", class: "btn-close btn-close-sm ms-1", "aria-label": fmt(t.remove_user, { name }), onclick: () => { src.users.splice(i, 1); rerender(); } })));
        });
        box.append(chips);
        const options = [["", t.add_user], ...meta.users.filter(([id]) => !src.users.includes(id))];
        box.append(select(options, "", (v) => { if (v) { src.users.push(v); rerender(); } }, { class: "form-select form-select-sm add-user", "aria-label": t.add_user }));
      } else if (src.source === "role") {
        box.append(labelled(t.role, select([["", t.choose], ...meta.roles], src.role, (v) => { src.role = v; changed(); }, { class: "form-select form-select-sm role-select" })));
      } else if (src.source === "project_role") {
        box.append(labelled(t.project_role, select(meta.project_roles, src.project_role || "pm", (v) => { src.project_role = v; changed(); }, { class: "form-select form-select-sm project-role-select" })));
      } else if (src.source === "manager") {
        box.append(labelled(t.levels, numberInput(src.levels || 1, (v) => { src.levels = Math.max(1, Math.min(10, parseInt(v, 10) || 1)); changed(); }, { min: 1, max: 10, step: 1, class: "form-control form-control-sm w-auto levels-input" })));
        box.append(checkbox(t.chain, src.chain, (on) => { src.chain = on; changed(); }, { class: "form-check-input chain-check" }));
      } else if (src.source === "picked") {
        box.append(h("div", { class: "small text-secondary" }, t.picked_hint));
      } else if (src.source === "field") {
        box.append(labelled(t.field, select([["", t.choose], ...meta.user_fields], src.field, (v) => { src.field = v; changed(); }, { class: "form-select form-select-sm field-select" })));
      }
      return box;
    }

    function approvalSettings(node) {
      const box = h("div", {});
      box.append(sourceEditor(node.approvers, false));
      if (["manager", "project_role", "field"].includes(node.approvers.source) || node.if_empty) {
        box.append(labelled(t.if_empty, select(meta.if_empty, node.if_empty || "", (v) => { node.if_empty = v; changed(); }, { class: "form-select form-select-sm if-empty-select" })));
      }
      const modeRow = h("div", { class: "row g-2" });
      modeRow.append(h("div", { class: "col-sm-6" }, labelled(t.mode, select(meta.modes, node.mode, (v) => {
        node.mode = v;
        node.quorum = v === "quorum" ? node.quorum || { count: 2, percent: null } : null;
        rerender();
      }, { class: "form-select form-select-sm mode-select" }))));
      if (node.mode === "quorum") {
        const q = node.quorum || (node.quorum = { count: 2, percent: null });
        const kind = q.percent ? "percent" : "count";
        modeRow.append(h("div", { class: "col-6 col-sm-3" }, labelled(t.quorum_kind, select([["count", t.quorum_count], ["percent", t.quorum_percent]], kind, (v) => {
          node.quorum = v === "percent" ? { count: null, percent: 50 } : { count: 2, percent: null };
          rerender();
        }, { class: "form-select form-select-sm quorum-kind" }))));
        modeRow.append(h("div", { class: "col-6 col-sm-3" }, labelled(t.quorum_value, numberInput(kind === "percent" ? q.percent : q.count, (v) => {
          const n = parseInt(v, 10);
          node.quorum = kind === "percent" ? { count: null, percent: Number.isFinite(n) ? n : null } : { count: Number.isFinite(n) ? n : null, percent: null };
          changed();
        }, { min: 1, max: 100, step: 1, class: "form-control form-control-sm quorum-value" }))));
      }
      box.append(modeRow);

      const more = h("details", { class: "flow-more mt-1" }, h("summary", { class: "small" }, t.more));
      const timing = h("div", { class: "row g-2 mt-1" });
      const hours = (v) => (v === "" || v === null ? null : v);
      timing.append(h("div", { class: "col-sm-4" }, labelled(t.sla, numberInput(node.sla_hours, (v) => { node.sla_hours = hours(v); changed(); }, { min: 0, step: "any", class: "form-control form-control-sm sla-input" }))));
      timing.append(h("div", { class: "col-sm-4" }, labelled(t.remind, numberInput(node.remind_after_hours, (v) => { node.remind_after_hours = hours(v); changed(); }, { min: 0, step: "any", class: "form-control form-control-sm remind-input" }))));
      timing.append(h("div", { class: "col-sm-4" }, labelled(t.on_timeout, select(meta.timeouts, node.on_timeout || "none", (v) => { node.on_timeout = v; changed(); }, { class: "form-select form-select-sm timeout-select" }))));
      more.append(timing);
      if (meta.editable.length) {
        const editable = h("div", { class: "mb-2" }, h("div", { class: "form-label small mb-1" }, t.editable));
        const list = h("div", { class: "d-flex flex-wrap gap-3" });
        for (const f of meta.editable) {
          list.append(checkbox(f.label, (node.editable_fields || []).includes(f.name), (on) => {
            const chosen = new Set(node.editable_fields || []);
            if (on) chosen.add(f.name); else chosen.delete(f.name);
            node.editable_fields = meta.editable.map((e) => e.name).filter((n) => chosen.has(n));
            changed();
          }, { class: "form-check-input editable-check", "data-field": f.name }));
        }
        editable.append(list);
        more.append(editable);
      }
      more.append(checkbox(t.comment_required, node.comment_required_on_reject !== false, (on) => { node.comment_required_on_reject = on; changed(); }, { class: "form-check-input comment-check" }));
      more.append(checkbox(t.self_approval, !!node.allow_self_approval, (on) => { node.allow_self_approval = on; changed(); }, { class: "form-check-input self-check" }));
      if (!["manager", "project_role", "field"].includes(node.approvers.source) && !node.if_empty) {
        more.append(labelled(t.if_empty, select(meta.if_empty, node.if_empty || "", (v) => { node.if_empty = v; rerender(); }, { class: "form-select form-select-sm if-empty-select" })));
      }
      box.append(more);
      return box;
    }

    // ---------------------------------------------------------------- branches

    function branchesEditor(node) {
      const box = h("div", { class: "flow-branches" });
      node.branches.forEach((branch, i) => {
        const card = h("div", { class: `flow-branch border rounded p-2 mb-2${branch.default ? " is-default" : ""}`, "data-node-id": branch.id, id: `node-${branch.id}` });
        const head = h("div", { class: "d-flex flex-wrap gap-1 align-items-center mb-2" });
        head.append(h("span", { class: "badge bg-secondary-lt" }, `${t.branch_of} ${i + 1}`));
        head.append(h("input", { type: "text", class: "form-control form-control-sm flex-fill w-auto branch-name", value: branch.name, "aria-label": t.name, maxlength: 100, oninput: (e) => { branch.name = e.target.value; changed(); } }));
        head.append(moveButtons(node.branches, i, branch.name));
        card.append(head);
        card.append(h("div", { class: "problem-slot" }));
        if (node.type === "branch") {
          card.append(checkbox(t.default_branch, !!branch.default, (on) => {
            for (const b of node.branches) b.default = false;
            branch.default = on;
            if (on) branch.when = null;
            rerender();
          }, { class: "form-check-input default-check" }));
          if (!branch.default) {
            card.append(h("div", { class: "form-label small mb-1 mt-1" }, t.condition));
            card.append(conditionEditor(() => branch.when, (c) => { branch.when = c; }));
          }
        }
        card.append(nodeList(branch.nodes, t.empty_branch));
        box.append(card);
      });
      box.append(h("button", {
        type: "button",
        class: "btn btn-sm btn-outline-secondary add-branch",
        onclick: () => {
          const index = node.branches.length + 1;
          const branch = newBranch(node.type, index, false);
          // A new conditional branch goes before the default one, which is tried last anyway.
          const at = node.type === "branch" && node.branches.length && node.branches[node.branches.length - 1].default ? node.branches.length - 1 : node.branches.length;
          node.branches.splice(at, 0, branch);
          rerender();
        },
      }, t.add_branch));
      return box;
    }

    // ---------------------------------------------------------------- node cards and lists

    function moveButtons(list, i, name) {
      const group = h("div", { class: "btn-group btn-group-sm" });
      group.append(h("button", { type: "button", class: "btn btn-sm move-up", title: t.up, "aria-label": `${t.up}: ${name}`, disabled: i === 0, onclick: () => { [list[i - 1], list[i]] = [list[i], list[i - 1]]; rerender(); } }, "↑"));
      group.append(h("button", { type: "button", class: "btn btn-sm move-down", title: t.down, "aria-label": `${t.down}: ${name}`, disabled: i === list.length - 1, onclick: () => { [list[i + 1], list[i]] = [list[i], list[i + 1]]; rerender(); } }, "↓"));
      group.append(h("button", { type: "button", class: "btn btn-sm btn-ghost-danger remove", title: t.remove, "aria-label": `${t.remove}: ${name}`, onclick: () => { list.splice(i, 1); rerender(); } }, "×"));
      return group;
    }

    function nodeCard(list, i) {
      const node = list[i];
      const card = h("div", { class: `card flow-node flow-node-${node.type}`, "data-node-id": node.id, "data-type": node.type, id: `node-${node.id}` });
      const head = h("div", { class: "card-header flex-wrap gap-1" });
      head.append(h("span", { class: `badge flow-type-${node.type}` }, t[node.type] || node.type));
      head.append(h("input", { type: "text", class: "form-control form-control-sm flex-fill w-auto node-name", value: node.name, "aria-label": t.name, maxlength: 100, oninput: (e) => { node.name = e.target.value; changed(); } }));
      head.append(h("code", { class: "small text-secondary", title: t.id }, node.id));
      head.append(moveButtons(list, i, node.name));
      card.append(head);
      const body = h("div", { class: "card-body" });
      body.append(h("div", { class: "problem-slot" }));
      if (node.type === "approval") body.append(approvalSettings(node));
      else if (node.type === "cc") body.append(sourceEditor(node.recipients, true));
      else body.append(branchesEditor(node));
      card.append(body);
      return card;
    }

    function addBar(list, at, always) {
      const buttons = h("div", { class: "btn-list flow-add-buttons" + (always ? "" : " d-none") });
      for (const type of ["approval", "cc", "branch", "parallel"]) {
        buttons.append(h("button", {
          type: "button",
          class: `btn btn-sm btn-outline-primary add-${type}`,
          "data-add": type,
          onclick: () => { list.splice(at, 0, newNode(type)); rerender(); },
        }, `+ ${t[type]}`));
      }
      if (always) return h("div", { class: "flow-add flow-add-end mt-2" }, h("span", { class: "small text-secondary me-2" }, t.add), buttons);
      const toggle = h("button", {
        type: "button",
        class: "btn btn-sm btn-icon btn-ghost-secondary flow-insert",
        title: t.insert,
        "aria-label": t.insert,
        "aria-expanded": "false",
        onclick: (e) => {
          const open = buttons.classList.toggle("d-none") === false;
          e.currentTarget.setAttribute("aria-expanded", open ? "true" : "false");
        },
      }, "+");
      return h("div", { class: "flow-add flow-add-between" }, toggle, buttons);
    }

    function nodeList(list, emptyText) {
      const box = h("div", { class: "flow-list" });
      if (!list.length) box.append(h("div", { class: "small text-secondary flow-empty" }, emptyText));
      list.forEach((_n, i) => {
        if (i) box.append(addBar(list, i, false));
        box.append(nodeCard(list, i));
      });
      box.append(addBar(list, list.length, true));
      return box;
    }

    function render() {
      const scroll = window.scrollY;
      root.replaceChildren(nodeList(doc.nodes, t.empty_flow));
      if (whenRoot) whenRoot.replaceChildren(conditionEditor(() => when, (c) => { when = c; }, t.applies_always));
      markProblems();
      window.scrollTo(0, scroll);
    }

    // ---------------------------------------------------------------- problems from the preview

    function markProblems() {
      for (const el of document.querySelectorAll(".flow-node.has-problem, .flow-branch.has-problem")) el.classList.remove("has-problem");
      for (const slot of document.querySelectorAll(".problem-slot")) slot.replaceChildren();
      const problems = document.querySelectorAll("#flow-problems .flow-problem[data-node]");
      for (const li of problems) {
        const id = li.getAttribute("data-node");
        if (!id) continue;
        const card = root.querySelector(`[data-node-id="${CSS.escape(id)}"]`);
        if (!card) continue;
        card.classList.add("has-problem");
        const slot = card.querySelector(":scope > .problem-slot, :scope > .card-body > .problem-slot");
        if (slot) {
          const text = li.cloneNode(true);
          const link = text.querySelector("a");
          if (link) link.remove();
          slot.append(h("div", { class: "text-danger small mb-2 node-problem" }, text.textContent.replace(/^:\s*/, "")));
        }
      }
    }

    // ---------------------------------------------------------------- wiring

    if (preview) {
      preview.addEventListener("htmx:afterSwap", markProblems);
    }
    if (onRejectField) onRejectField.addEventListener("change", changed);
    for (const id of ["id_name"]) {
      const el = document.getElementById(id);
      if (el) el.addEventListener("input", refreshPreview);
    }
    let typing = null;
    docField.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        let parsed = null;
        let message = "";
        try {
          parsed = JSON.parse(docField.value);
        } catch (e) {
          message = e.message;
        }
        if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
          if (!Array.isArray(parsed.nodes)) parsed.nodes = [];
          doc = parsed;
          if (onRejectField && doc.on_reject) onRejectField.value = doc.on_reject;
          render();
          if (jsonError) jsonError.classList.add("d-none");
        } else if (jsonError) {
          jsonError.textContent = fmt(t.json_error, { error: message || "{}" });
          jsonError.classList.remove("d-none");
        }
        refreshPreview();
      }, 400);
    });
    if (whenField) {
      whenField.addEventListener("input", () => {
        when = readWhen();
        if (whenRoot) whenRoot.replaceChildren(conditionEditor(() => when, (c) => { when = c; }, t.applies_always));
        refreshPreview();
      });
    }

    // With the script running, the cards are the editor; the JSON stays one click away.
    const jsonBox = document.getElementById("flow-json");
    if (jsonBox && !document.querySelector("#flow-form .is-invalid")) jsonBox.removeAttribute("open");
    document.getElementById("flow-form").classList.add("flow-editor-ready");
    render();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
