/* django-whatsapp: a campaign's page. Polls the page's progress URL and updates the progress bar
   (sent and cancelled), the counts per status, the delivery funnel, the chart, the estimate (from
   what is left and the throughput measured so far) and what holds the campaign back, every 2
   seconds while it runs, every 5 once it is finished, until the statuses stop changing (the
   server says so: "live"); when the campaign's status changes, the page is reloaded so that its
   buttons fit the new status. Without this script the page shows the state when it was loaded
   (reload to follow). */
(function () {
    "use strict";

    const RUNNING_MS = 2000;
    const SETTLING_MS = 5000;

    function setText(id, value) {
        const node = document.getElementById(id);
        if (node) node.textContent = String(value);
    }

    /* Replace the element with id ``id`` by the one in ``html`` (rendered and escaped by the
       server). */
    function swap(id, html) {
        const current = document.getElementById(id);
        if (!current || html === undefined) return;
        const box = document.createElement("div");
        box.innerHTML = html;
        const fresh = box.querySelector("#" + id);
        if (fresh) current.replaceWith(fresh);
    }

    function render(root, state) {
        const bar = document.getElementById("wa-progress-bar");
        if (bar && state.bar) bar.innerHTML = state.bar;
        setText("wa-progress-settled", state.settled);
        setText("wa-progress-total", state.total);
        setText("wa-progress-sent", state.sent);
        setText("wa-progress-cancelled", state.cancelled);
        setText("wa-progress-waiting", state.waiting);
        setText("wa-progress-in-flight", state.in_flight);
        const notice = document.getElementById("wa-campaign-notice");
        if (notice) {
            notice.textContent = state.notice || "";
            notice.hidden = !state.notice;
        }
        swap("wa-summary", state.summary_html);
        swap("wa-estimate-box", state.estimate_html);
        const chart = document.getElementById("wa-chart-box");
        if (chart && state.chart_html !== undefined) chart.innerHTML = state.chart_html;
        root.dataset.percent = String(state.percent);
        root.dataset.live = state.live ? "true" : "false";
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
                    if (state.live) window.setTimeout(poll, state.finished ? SETTLING_MS : RUNNING_MS);
                })
                .catch(() => window.setTimeout(poll, SETTLING_MS));
        }

        root.dataset.polling = "true";
        if (root.dataset.live === "true") {
            window.setTimeout(poll, root.dataset.finished === "true" ? SETTLING_MS : RUNNING_MS);
        }
    }

    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
    else init();
})();
