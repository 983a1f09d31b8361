/* The DAG component (templates/partials/dag.html): a graph read from a JSON URL, laid
   out top-down by cytoscape + dagre, each box a link, with upstream/downstream depth
   controls, zoom and fit. Many instances of one node (an hourly node's 24 runs) come as
   one group box; tapping it opens it (?expand=<key>) and "Regroup" closes them again. Box colours are read from the badge styles (.badge-<colour>),
   so a state looks the same in a graph as in every badge: the colour names come from
   the choices, their paint from the stylesheet. */
(function () {
  "use strict";
  if (window.opscenterDag) return;

  const POLL_SECONDS = 5; // while the answer says something in it still runs (unless it says)
  const READABLE_ZOOM = 0.6; // below this the labels are too small to read
  const FOCUS_ZOOM = 0.9; // a large graph opens at this zoom around its focus
  const MAX_FIT_ZOOM = 1.3; // a small graph is not blown up to fill the canvas
  const BOX_WIDTH = 184;
  const LABEL_CHARS = 26;
  const palette = {};

  function paint(name) {
    if (!palette[name]) {
      const probe = document.createElement("span");
      probe.className = "badge badge-" + (name || "gray");
      probe.style.position = "absolute";
      probe.style.visibility = "hidden";
      document.body.appendChild(probe);
      const css = getComputedStyle(probe);
      palette[name] = { bg: css.backgroundColor, fg: css.color, border: css.borderTopColor };
      probe.remove();
    }
    return palette[name];
  }

  function cut(text, chars) {
    text = text || "";
    return text.length > chars ? text.slice(0, chars - 1) + "…" : text;
  }

  function nodeData(node) {
    const colour = paint(node.color);
    return {
      id: String(node.id),
      label: node.label,
      sublabel: node.sublabel || "",
      text: cut(node.label, LABEL_CHARS) + (node.sublabel ? "\n" + cut(node.sublabel, LABEL_CHARS + 4) : ""),
      url: node.url || "",
      group: node.group || "",
      collapsed: !!node.collapsed,
      bg: colour.bg,
      fg: colour.fg,
      border: colour.border,
    };
  }

  function nodeClasses(node) {
    return [
      node.focus ? "focus" : "",
      node.paused ? "paused" : "",
      node.collapsed ? "group" : node.group ? "member" : "",
    ].join(" ").trim();
  }

  function edgeId(edge) {
    return "e" + edge.source + "-" + edge.target;
  }

  function graphShape(data) {
    // Which boxes and lines there are: when it is unchanged a refresh only repaints.
    return data.nodes.map((n) => String(n.id)).sort().join(",") + "|" +
      data.edges.map(edgeId).sort().join(",");
  }

  const STYLE = [
    {
      selector: "node",
      style: {
        shape: "round-rectangle",
        width: BOX_WIDTH,
        height: 44,
        "background-color": "data(bg)",
        "border-width": 1,
        "border-color": "data(border)",
        label: "data(text)",
        color: "data(fg)",
        "font-size": 12,
        "font-weight": 500,
        "font-family": "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif",
        "text-wrap": "wrap",
        "text-max-width": BOX_WIDTH - 12,
        "text-valign": "center",
        "text-halign": "center",
        "line-height": 1.3,
        "min-zoomed-font-size": 6,
        "overlay-padding": 3,
      },
    },
    { selector: "node.focus", style: { "border-width": 3, "border-color": "#2456d3" } },
    { selector: "node.paused", style: { "border-style": "dashed", "border-width": 2, "border-color": "#5d36ad" } },
    { selector: "node.focus.paused", style: { "border-width": 3 } },
    // A group box looks like a stack of boxes; an opened group's instances are outlined.
    { selector: "node.group", style: { "border-width": 4, "border-style": "double", height: 50 } },
    { selector: "node.member", style: { "border-width": 2, "border-style": "dotted" } },
    { selector: "node:active", style: { "overlay-opacity": 0.12, "overlay-color": "#2456d3" } },
    {
      selector: "edge",
      style: {
        width: 1.5,
        "line-color": "#a9b2bf",
        "target-arrow-color": "#a9b2bf",
        "target-arrow-shape": "triangle",
        "arrow-scale": 0.9,
        "curve-style": "bezier",
        opacity: 0.7,
      },
    },
    // The lines of the focus, and of the box under the pointer, stand out of a dense graph.
    { selector: "edge.near", style: { opacity: 1, "line-color": "#7d8897", "target-arrow-color": "#7d8897" } },
    {
      selector: "edge.hover",
      style: { opacity: 1, width: 2.5, "line-color": "#2456d3", "target-arrow-color": "#2456d3", "z-index": 10 },
    },
    {
      selector: "edge.removed",
      style: { "line-style": "dashed", "line-color": "#d3d8df", "target-arrow-color": "#d3d8df" },
    },
  ];

  class Dag {
    constructor(root) {
      this.root = root;
      this.url = root.dataset.url;
      this.depth = { up: parseInt(root.dataset.up, 10) || 0, down: parseInt(root.dataset.down, 10) || 0 };
      this.maxDepth = parseInt(root.dataset.maxDepth, 10) || 10;
      this.canvas = root.querySelector("[data-dag-canvas]");
      this.status = root.querySelector("[data-dag-status]");
      this.list = root.querySelector("[data-dag-list]");
      this.data = null;
      this.shape = "";
      // Group boxes the reader opened, kept in the address on the full-screen page.
      this.expanded = new Set(
        "syncAddress" in root.dataset ? new URL(window.location.href).searchParams.getAll("expand") : []
      );
      this.timer = null;
      this.request = 0;
      this.cy = cytoscape({
        container: this.canvas,
        style: STYLE,
        minZoom: 0.05,
        maxZoom: 2.5,
        boxSelectionEnabled: false,
        autoungrabify: true,
      });
      this.cy.on("tap", "node", (event) => {
        const node = event.target;
        if (node.data("collapsed")) {
          this.expand(node.data("group"));
          return;
        }
        const url = node.data("url");
        if (url) window.location.href = url;
      });
      this.cy.on("mouseover", "node", (event) => {
        const node = event.target;
        node.connectedEdges().addClass("hover");
        this.canvas.style.cursor = node.data("url") || node.data("collapsed") ? "pointer" : "";
        this.canvas.title = node.data("label") + (node.data("sublabel") ? "\n" + node.data("sublabel") : "");
      });
      this.cy.on("mouseout", "node", (event) => {
        event.target.connectedEdges().removeClass("hover");
        this.canvas.style.cursor = "";
        this.canvas.title = "";
      });
      root.querySelectorAll("[data-dag-step]").forEach((button) => {
        button.addEventListener("click", () => {
          const which = button.dataset.dagStep;
          this.setDepth(which, this.depth[which] + parseInt(button.dataset.delta, 10));
        });
      });
      root.querySelectorAll("[data-dag-zoom]").forEach((button) => {
        button.addEventListener("click", () => this.zoomBy(button.dataset.dagZoom === "in" ? 1.25 : 0.8));
      });
      const fit = root.querySelector("[data-dag-fit]");
      if (fit) fit.addEventListener("click", () => this.cy.fit(this.cy.elements(), 24));
      const regroup = root.querySelector("[data-dag-regroup]");
      if (regroup) {
        regroup.addEventListener("click", () => {
          this.expanded.clear();
          this.load({ layout: true });
        });
      }
      this.load({ layout: true });
    }

    setDepth(which, value) {
      value = Math.max(0, Math.min(this.maxDepth, value));
      if (value === this.depth[which]) return;
      this.depth[which] = value;
      this.load({ layout: true });
    }

    expand(key) {
      if (!key || this.expanded.has(key)) return;
      this.expanded.add(key);
      this.load({ layout: true });
    }

    zoomBy(factor) {
      this.cy.zoom({
        level: this.cy.zoom() * factor,
        renderedPosition: { x: this.canvas.clientWidth / 2, y: this.canvas.clientHeight / 2 },
      });
    }

    query() {
      const params = new URLSearchParams({ up: this.depth.up, down: this.depth.down });
      this.expanded.forEach((key) => params.append("expand", key));
      return params.toString();
    }

    load({ layout }) {
      clearTimeout(this.timer);
      const number = ++this.request;
      // A refresh in the background keeps showing what it has until the answer comes.
      if (layout) this.root.dataset.dagState = "loading";
      const url = this.url + (this.url.includes("?") ? "&" : "?") + this.query();
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then((response) =>
          response.json().then(
            (body) => ({ response, body }),
            () => ({ response, body: {} })
          )
        )
        .then(({ response, body }) => {
          if (number !== this.request) return; // a newer request is under way
          if (!response.ok) {
            this.fail(body.detail || "HTTP " + response.status);
            return;
          }
          this.show(body, { layout });
        })
        .catch(() => {
          if (number === this.request) this.fail("the server did not answer");
        });
    }

    fail(message) {
      this.root.dataset.dagState = "error";
      this.status.textContent = "Could not load the graph: " + message;
      // A live graph keeps trying; a broken URL would only fail again.
      if (this.data && this.data.live) this.schedule();
    }

    show(data, { layout }) {
      const shape = graphShape(data);
      const relayout = layout || shape !== this.shape;
      this.data = data;
      this.shape = shape;
      if (relayout) {
        // A line needs both its boxes (a box may be left out, e.g. a hidden project's).
        const ids = new Set(data.nodes.map((n) => String(n.id)));
        const edges = data.edges.filter((e) => ids.has(String(e.source)) && ids.has(String(e.target)));
        this.cy.elements().remove();
        this.cy.add(
          data.nodes
            .map((n) => ({ group: "nodes", data: nodeData(n), classes: nodeClasses(n) }))
            .concat(
              edges.map((e) => ({
                group: "edges",
                data: { id: edgeId(e), source: String(e.source), target: String(e.target) },
                classes: e.removed ? "removed" : "",
              }))
            )
        );
        this.cy.nodes(".focus").connectedEdges().addClass("near");
        this.cy.layout({ name: "dagre", rankDir: "TB", nodeSep: 22, rankSep: 54, edgeSep: 10, fit: false }).run();
        this.frame();
      } else {
        // Same boxes, new states: repaint in place, keeping the reader's zoom and pan.
        this.cy.batch(() => {
          data.nodes.forEach((n) => {
            const node = this.cy.getElementById(String(n.id));
            node.data(nodeData(n));
            node.classes(nodeClasses(n));
          });
          data.edges.forEach((e) => this.cy.getElementById(edgeId(e)).toggleClass("removed", !!e.removed));
        });
      }
      this.controls(data);
      this.describe(data);
      this.root.dataset.dagState = "ready";
      if (data.live) this.schedule();
    }

    /* Fit the whole graph when it is still readable that way; a large one opens on its
       focus at a readable zoom instead ("Fit" shows it all). */
    frame() {
      const all = this.cy.elements();
      if (all.empty()) return;
      this.cy.fit(all, 24);
      if (this.cy.zoom() > MAX_FIT_ZOOM) {
        this.cy.zoom(MAX_FIT_ZOOM);
        this.cy.center(all);
      }
      if (this.cy.zoom() >= READABLE_ZOOM) return;
      const focus = this.cy.nodes(".focus");
      this.cy.zoom(FOCUS_ZOOM);
      this.cy.center(focus.nonempty() ? focus : all);
    }

    controls(data) {
      ["up", "down"].forEach((which) => {
        const value = this.depth[which];
        this.root.querySelector('[data-dag-value="' + which + '"]').textContent = value;
        const more = data["more_" + which];
        this.root.querySelectorAll('[data-dag-step="' + which + '"]').forEach((button) => {
          const delta = parseInt(button.dataset.delta, 10);
          button.disabled = delta < 0 ? value <= 0 : value >= this.maxDepth || more === false;
        });
      });
      const full = this.root.querySelector("[data-dag-full]");
      if (full) full.href = full.href.split("?")[0] + "?" + this.query();
      if ("syncAddress" in this.root.dataset) {
        const address = new URL(window.location.href);
        address.search = this.query();
        window.history.replaceState(window.history.state, "", address);
      }
      // Only groups that are open can be closed again.
      const open = (data.groups || []).filter((group) => group.expanded);
      const regroup = this.root.querySelector("[data-dag-regroup]");
      if (regroup) regroup.hidden = open.length === 0;
    }

    describe(data) {
      const parts = [
        data.summary || data.nodes.length + " node" + (data.nodes.length === 1 ? "" : "s"),
      ];
      if (data.hidden) parts.push(data.hidden + " in projects you are not a member of");
      if (data.truncated) parts.push("cut at " + data.nodes.length);
      if (data.live) parts.push("live");
      this.status.textContent = parts.join(" · ");
      this.list.replaceChildren(
        ...data.nodes.map((n) => {
          const item = document.createElement("li");
          item.dataset.id = n.id;
          if (n.badge) {
            const badge = document.createElement("span");
            badge.className = "badge badge-" + (n.color || "gray");
            badge.textContent = n.badge;
            item.append(badge, " ");
          }
          const link = document.createElement(n.url ? "a" : n.collapsed ? "button" : "span");
          if (n.url) link.href = n.url;
          if (n.collapsed) {
            // The list opens a group the way a tap on its box does.
            link.type = "button";
            link.className = "linklike";
            link.dataset.dagExpand = n.group;
            link.title = "Show each instance";
            link.addEventListener("click", () => this.expand(n.group));
          }
          link.textContent = n.label;
          if (n.focus) link.setAttribute("aria-current", "true");
          item.append(link);
          // The badge already says the state the box's second line also names.
          const rest = (n.sublabel || "").split(" · ").filter((part) => part && part !== n.badge);
          if (rest.length) {
            const sub = document.createElement("span");
            sub.className = "muted";
            sub.textContent = " " + rest.join(" · ");
            item.append(sub);
          }
          return item;
        })
      );
    }

    schedule() {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        // Stop when the graph left the page (an htmx swap replaced it).
        if (document.body.contains(this.root)) this.load({ layout: false });
      }, 1000 * ((this.data && this.data.poll_seconds) || POLL_SECONDS));
    }
  }

  /* The libraries come as separate scripts; inserted by htmx they may run in any order,
     so a graph waits for both (and registers the layout if dagre came first). */
  function librariesReady() {
    if (!window.cytoscape || !window.cytoscapeDagre) return false;
    if (!window.cytoscape("layout", "dagre")) window.cytoscape.use(window.cytoscapeDagre);
    return true;
  }

  function start(scope, tries) {
    tries = tries || 0;
    if (!librariesReady()) {
      if (tries < 200) setTimeout(() => start(scope, tries + 1), 50);
      return;
    }
    (scope || document).querySelectorAll("[data-dag]:not([data-dag-started])").forEach((root) => {
      root.dataset.dagStarted = "";
      root.dag = new Dag(root);
    });
  }

  window.opscenterDag = { start: start };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => start());
  } else {
    start();
  }
  document.addEventListener("htmx:load", (event) => start(event.target));
  // Another part of the page saw something change (an htmx answer's HX-Trigger): every
  // graph asks for its data again now rather than at its next poll, or at all.
  document.addEventListener("opscenter:graph-refresh", () => {
    document.querySelectorAll("[data-dag-started]").forEach((root) => {
      if (root.dag) root.dag.load({ layout: false });
    });
  });
})();
