/* django-whatsapp: a campaign's page. Polls the page's progress URL every 2 seconds and updates
   the progress bar, the counts per status and the delivery funnel; when the
   campaign's status changes, the page is reloaded so that its buttons fit the new status.
   Without this script the page shows the state when it was loaded (reload to follow). */
(function () {
    "use strict";

    const EVERY_MS = 2000;

    function setText(id, value) {
        const node = document.getElementById(id);
        if (node) node.textContent = String(value);
    }

    function render(root, state) {
        const bar = document.getElementById("wa-progress");
        const fill = document.getElementById("wa-progress-fill");
        bar.dataset.percent = String(state.percent);
        bar.setAttribute("aria-valuenow", String(state.percent));
        fill.style.width = state.percent + "%";
        setText("wa-progress-percent", state.percent + "%");
        setText("wa-progress-settled", state.settled);
        setText("wa-progress-total", state.total);
        setText("wa-progress-waiting", state.waiting);
        setText("wa-progress-in-flight", state.in_flight);
        /* The counts per status and the funnel, as the server renders them (escaped there). */
        const summary = document.getElementById("wa-summary");
        if (summary && state.summary_html) {
            const box = document.createElement("div");
            box.innerHTML = state.summary_html;
            const fresh = box.querySelector("#wa-summary");
            if (fresh) summary.replaceWith(fresh);
        }
        root.dataset.percent = String(state.percent);
    }

    function init() {
        const root = document.querySelector(".wa-campaign[data-progress-url]");
        if (!root) return;
        const url = root.dataset.progressUrl;
        const initialStatus = root.dataset.status;

        function poll() {
            fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
                .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
                .then((state) => {
                    render(root, state);
                    if (state.status !== initialStatus) {
                        window.location.reload();
                        return;
                    }
                    if (!state.finished) window.setTimeout(poll, EVERY_MS);
                })
                .catch(() => window.setTimeout(poll, EVERY_MS * 2));
        }

        root.dataset.live = "true";
        if (root.dataset.finished !== "true") window.setTimeout(poll, EVERY_MS);
    }

    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
    else init();
})();
