"""An HTML widget whose steps can be clicked (the live view's graph, timeline
and table), made with anywidget.

It shows ``value`` (HTML made by nbsteps, user text escaped) and, when a
step is clicked (a graph node, a timeline bar or a table row: any element
with ``data-step``, or a graph node's ``<title>``), sets ``index`` to the
step's place in ``steps`` and ``clicked`` to its name. The live view links
``index`` to its step-log picker in the browser (``jslink``), so the log
shows at once, while the kernel is busy running the plan.

Without anywidget, :func:`clickable_html` gives a plain ``ipywidgets.HTML``
(the picker still shows any step's log).
"""

from __future__ import annotations

_ESM = """
function render({ model, el }) {
  el.classList.add("jupyter-widgets", "nbsteps-clickable");
  const draw = () => { el.innerHTML = model.get("value"); };
  draw();
  model.on("change:value", draw);
  const onClick = (event) => {
    const target = event.target.closest("[data-step], g.node.nbsteps-step");
    if (!target || !el.contains(target)) return;
    let name = target.getAttribute("data-step");
    if (!name) {
      const title = target.querySelector("title");
      name = title ? title.textContent : "";
    }
    const index = model.get("steps").indexOf(name);
    if (!name || index < 1) return;
    model.set("clicked", name);
    model.set("index", index);
    model.save_changes();
  };
  el.addEventListener("click", onClick);
  return () => { el.removeEventListener("click", onClick); model.off("change:value", draw); };
}
export default { render };
"""

_CSS = """
.nbsteps-clickable g.node.nbsteps-step, .nbsteps-clickable [data-step] { cursor: pointer; }
.nbsteps-clickable tr[data-step]:hover td { filter: brightness(0.93); }
.nbsteps-clickable g.node.nbsteps-step:hover path, .nbsteps-clickable g.node.nbsteps-step:hover polygon,
.nbsteps-clickable g.nbsteps-tl-bar:hover rect { stroke-width: 2.5; }
"""

try:
    import anywidget
    import traitlets
except ImportError:  # pragma: no cover - anywidget is a dependency; a broken install still shows the view
    ClickableHTML = None
else:

    class ClickableHTML(anywidget.AnyWidget):
        """HTML whose steps can be clicked (see the module docstring)."""

        _esm = _ESM
        _css = _CSS
        value = traitlets.Unicode("").tag(sync=True)
        #: "" first: index 0 is "no step" (the picker's hint)
        steps = traitlets.List(traitlets.Unicode(), default_value=[""]).tag(sync=True)
        index = traitlets.Int(0).tag(sync=True)
        clicked = traitlets.Unicode("").tag(sync=True)


_LOGS_ESM = """
function render({ model, el }) {
  el.classList.add("jupyter-widgets", "nbsteps-step-logs");
  const draw = () => {
    const name = model.get("steps")[model.get("index")] || "";
    el.innerHTML = name ? (model.get("logs")[name] || "") : "";
  };
  draw();
  model.on("change:index", draw);
  model.on("change:logs", draw);
  model.on("change:steps", draw);
  return () => {
    model.off("change:index", draw); model.off("change:logs", draw); model.off("change:steps", draw);
  };
}
export default { render };
"""

if ClickableHTML is not None:

    class StepLogs(anywidget.AnyWidget):
        """The log of the step at ``index`` of ``steps``, from ``logs``
        (step -> HTML made by nbsteps): switched in the browser."""

        _esm = _LOGS_ESM
        logs = traitlets.Dict().tag(sync=True)
        steps = traitlets.List(traitlets.Unicode(), default_value=[""]).tag(sync=True)
        index = traitlets.Int(0).tag(sync=True)
else:  # pragma: no cover
    StepLogs = None


def clickable_html(cls: str):
    """A widget for HTML with clickable steps, with the CSS class *cls*."""
    if ClickableHTML is not None:
        widget = ClickableHTML()
    else:  # pragma: no cover
        import ipywidgets as w

        widget = w.HTML(value="")
    widget.add_class(cls)
    return widget
