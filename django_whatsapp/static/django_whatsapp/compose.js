/* django-whatsapp: the compose page (and "Send to many", "Add campaign"). Shows only the chosen
   type's fields, builds one input per placeholder of the chosen template, renders a live preview
   of the message, shows the chosen account's sender as the sender's placeholder, says while the
   recipient is typed when a message to them would be refused (opted out) or may be (the 24-hour
   window), and on "Add campaign" shows only the chosen source of the template's parameters.
   Without this script the page still works: every section is shown, "Update form" re-renders
   it, and the server says the same things when the form is sent. */
(function () {
    "use strict";

    const PLACEHOLDER = /\{\{\s*(\d+)\s*\}\}/g;
    const IMAGE_URL = /^https?:\/\/[^\s/]+\/\S*\.(jpe?g|png)(\?\S*)?(#\S*)?$/i;

    function readJSON(id) {
        const node = document.getElementById(id);
        return node ? JSON.parse(node.textContent) : {};
    }

    function el(tag, attrs, children) {
        const node = document.createElement(tag);
        Object.entries(attrs || {}).forEach(([key, value]) => {
            if (key === "text") node.textContent = value;
            else node.setAttribute(key, value);
        });
        (children || []).forEach((child) => child && node.append(child));
        return node;
    }

    /* Text with {{n}} placeholders, as nodes: filled from values, or marked when still empty. */
    function fillPlaceholders(body, values) {
        const nodes = [];
        let last = 0;
        body.replace(PLACEHOLDER, (match, number, offset) => {
            nodes.push(document.createTextNode(body.slice(last, offset)));
            const value = values ? values[Number(number) - 1] : "";
            nodes.push(value ? document.createTextNode(value)
                : el("mark", {"class": "wa-placeholder", text: match}));
            last = offset + match.length;
            return match;
        });
        nodes.push(document.createTextNode(body.slice(last)));
        return nodes;
    }

    function media(url) {
        const box = el("div", {"class": "wa-media"}, [el("span", {"class": "wa-media-name", text: url})]);
        if (IMAGE_URL.test(url)) {
            const img = el("img", {alt: "", src: url, referrerpolicy: "no-referrer"});
            img.addEventListener("load", () => box.classList.add("wa-media-loaded"));
            img.addEventListener("error", () => img.remove());
            box.prepend(img);
        }
        return box;
    }

    /* The sender left empty is the chosen account's: its placeholder shows which. */
    function followAccount(form) {
        const account = form.querySelector("select[data-wa-senders]");
        const sender = form.elements.namedItem("source_addr");
        if (!account || !sender) return;
        const senders = JSON.parse(account.dataset.waSenders);
        const show = () => { sender.placeholder = senders[account.value] || ""; };
        account.addEventListener("change", show);
        show();
    }

    /* While the number is typed: a message to an opted-out customer would be refused. */
    function checkRecipient(form) {
        const input = form.querySelector("input[data-wa-check-url]");
        const note = document.getElementById("wa-recipient-warning");
        if (!input || !note) return;
        let timer = null;
        let asked = "";
        const ask = () => {
            const number = input.value.trim();
            if (number === asked) return;
            asked = number;
            if (number.replace(/\D/g, "").length < 6) {
                note.hidden = true;
                return;
            }
            const url = input.dataset.waCheckUrl + "?" + new URLSearchParams({number: number});
            fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
                .then((response) => (response.ok ? response.json() : {warnings: []}))
                .then((answer) => {
                    if (number !== asked) return;
                    note.textContent = answer.warnings.join(" ");
                    note.hidden = !answer.warnings.length;
                })
                .catch(() => { note.hidden = true; });
        };
        input.addEventListener("input", () => {
            window.clearTimeout(timer);
            timer = window.setTimeout(ask, 300);
        });
        ask();
    }

    /* "Add campaign": the template's parameters from columns of the file, or the same for
       everyone; only the chosen one's inputs show. */
    function paramSource(form) {
        const choices = form.querySelectorAll('input[name="param_source"]');
        const parts = document.querySelectorAll("[data-wa-params]");
        if (!choices.length || !parts.length) return;
        const show = () => {
            const checked = form.querySelector('input[name="param_source"]:checked');
            const source = checked ? checked.value : "fixed";
            parts.forEach((part) => { part.hidden = part.dataset.waParams !== source; });
        };
        choices.forEach((choice) => choice.addEventListener("change", show));
        show();
    }

    function init() {
        const root = document.getElementById("wa-compose");
        if (!root) return;
        const form = root.closest("form");
        const templates = readJSON("wa-templates");
        const i18n = readJSON("wa-compose-i18n");
        const sections = root.querySelectorAll(".wa-section");
        const typeInputs = form.querySelectorAll('input[name="message_type"]');
        const templateSelect = form.querySelector('select[name="template"]');
        const headerRow = document.getElementById("wa-header-row");
        const headerInput = form.querySelector('input[name="header"]');
        const headerLabel = headerRow.querySelector("label");
        const bodyRow = document.getElementById("wa-template-body-row");
        const bodyBox = document.getElementById("wa-template-body");
        const params = document.getElementById("wa-params");
        const preview = document.getElementById("wa-preview");
        const bubble = document.getElementById("wa-bubble");

        const value = (name) => {
            const field = form.elements.namedItem(name);
            return field && !field.disabled ? field.value : "";
        };
        const chosenType = () => {
            const checked = form.querySelector('input[name="message_type"]:checked');
            return checked ? checked.value : "";
        };
        const chosenTemplate = () => templates[templateSelect.value] || null;

        function showType() {
            const type = chosenType();
            sections.forEach((section) => {
                const active = section.dataset.waType === type;
                section.hidden = !active;
                section.querySelectorAll("input, select, textarea").forEach((field) => {
                    field.disabled = !active;
                });
            });
            showTemplate(false);
        }

        function paramRow(param, current) {
            const id = "id_" + param.name;
            const input = el("input", {type: "text", name: param.name, id: id, value: current || ""});
            const row = el("div", {"class": "form-row field-" + param.name}, [
                el("div", {}, [
                    el("div", {"class": "flex-container"}, [el("label", {"for": id, text: param.label + ":"}), input]),
                    param.help ? el("div", {"class": "help", id: id + "_helptext"}, [el("div", {text: param.help})]) : null,
                ]),
            ]);
            if (param.help) input.setAttribute("aria-describedby", id + "_helptext");
            return row;
        }

        /* Rebuild the template's inputs when another template is chosen (typed values are kept
           by placeholder number); on load the server-rendered inputs, with their errors, stay. */
        function showTemplate(rebuild) {
            const template = chosenTemplate();
            const active = chosenType() === "4";
            bodyRow.hidden = !template;
            bodyBox.replaceChildren(...(template ? fillPlaceholders(template.body, null) : []));
            const needsHeader = Boolean(template && template.header_type !== "none");
            headerRow.hidden = !needsHeader;
            headerInput.disabled = !active || !needsHeader;
            if (template) headerLabel.textContent = template.header_label + ":";
            headerInput.type = template && template.header_type === "image" ? "url" : "text";
            const key = templateSelect.value;
            if (rebuild || params.dataset.template !== key) {
                const typed = {};
                params.querySelectorAll("input").forEach((input) => { typed[input.name] = input.value; });
                params.replaceChildren(...(template ? template.params.map((p) => paramRow(p, typed[p.name])) : []));
                params.dataset.template = key;
            }
            params.querySelectorAll("input").forEach((input) => { input.disabled = !active; });
        }

        function render() {
            const type = chosenType();
            const parts = [];
            if (type === "1" && value("text").trim()) {
                parts.push(el("div", {"class": "wa-bubble-text", text: value("text")}));
            } else if (type === "2" && value("file_url").trim()) {
                parts.push(media(value("file_url").trim()));
                if (value("caption").trim()) parts.push(el("div", {"class": "wa-bubble-text", text: value("caption")}));
            } else if (type === "4" && chosenTemplate()) {
                const template = chosenTemplate();
                const header = value("header").trim();
                if (template.header_type === "image") parts.push(media(header || "…"));
                else if (template.header_type === "text") {
                    parts.push(el("div", {"class": "wa-bubble-header"},
                        header ? [document.createTextNode(header)] : [el("mark", {"class": "wa-placeholder", text: template.header_label})]));
                }
                const values = template.params.map((p) => value(p.name).trim());
                parts.push(el("div", {"class": "wa-bubble-text"}, fillPlaceholders(template.body, values)));
                parts.push(el("div", {"class": "wa-bubble-footer",
                    text: i18n.template.replace("%(name)s", template.name).replace("%(language)s", template.language)}));
            }
            if (!parts.length) {
                parts.push(el("div", {"class": "wa-bubble-empty", text: type === "4" ? i18n.choose_template : i18n.empty}));
            }
            /* The site's time of day, written as every page of the console writes times. */
            parts.push(el("div", {"class": "wa-bubble-meta", text: i18n.now || ""}));
            bubble.replaceChildren(...parts);
        }

        followAccount(form);
        checkRecipient(form);
        paramSource(form);
        typeInputs.forEach((input) => input.addEventListener("change", () => { showType(); render(); }));
        templateSelect.addEventListener("change", () => { showTemplate(true); render(); });
        form.addEventListener("input", render);
        showType();
        preview.hidden = false;
        render();
    }

    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
    else init();
})();
