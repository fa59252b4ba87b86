/* django-whatsapp: a template's body with its {{n}} placeholders highlighted as it is typed. */
(function () {
    "use strict";

    const PLACEHOLDER = /\{\{\s*\d+\s*\}\}/g;

    function highlight(target, body) {
        const nodes = [];
        let last = 0;
        body.replace(PLACEHOLDER, (match, offset) => {
            nodes.push(document.createTextNode(body.slice(last, offset)));
            const mark = document.createElement("mark");
            mark.className = "wa-placeholder";
            mark.textContent = match;
            nodes.push(mark);
            last = offset + match.length;
            return match;
        });
        nodes.push(document.createTextNode(body.slice(last)));
        target.replaceChildren(...nodes);
    }

    function init() {
        const body = document.getElementById("id_body");
        const target = document.getElementById("wa-highlighted-body");
        if (!body || !target) return;
        body.addEventListener("input", () => highlight(target, body.value));
        highlight(target, body.value);
    }

    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
    else init();
})();
