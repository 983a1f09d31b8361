/* Batch selection on list pages: a form[data-batch] and the row checkboxes that belong to
   it (input[name="ids"][form="<its id>"]) inside a table that re-renders itself. Ticks
   survive the table's refreshes; the count and the submit buttons follow them. The form
   says what it selects (data-batch-noun) and what to show with nothing ticked
   (data-batch-prompt); a header checkbox [data-batch-all] ticks every row. */
(function () {
  "use strict";
  if (window.opscenterBatch) return;
  window.opscenterBatch = true;

  const selected = new Map(); // form id -> values ticked

  function batchForms() {
    return Array.from(document.querySelectorAll("form[data-batch]"));
  }

  function chosen(form) {
    if (!selected.has(form.id)) selected.set(form.id, new Set());
    return selected.get(form.id);
  }

  function boxes(form) {
    return Array.from(document.querySelectorAll('input[name="ids"][form="' + form.id + '"]'));
  }

  function formOf(element) {
    const id = element.getAttribute("form");
    return id ? document.getElementById(id) : null;
  }

  function update(form) {
    const all = boxes(form);
    const checked = all.filter((box) => box.checked).length;
    const noun = form.dataset.batchNoun || "item";
    const count = form.querySelector("[data-batch-count]");
    if (count) {
      count.textContent = checked
        ? checked + " " + noun + (checked === 1 ? "" : "s") + " selected"
        : form.dataset.batchPrompt || "";
    }
    form.querySelectorAll("[data-batch-submit]").forEach((button) => {
      button.disabled = checked === 0;
    });
    form.classList.toggle("has-selection", checked > 0);
    const header = document.querySelector("[data-batch-all]");
    if (header) {
      header.checked = checked > 0 && checked === all.length;
      header.indeterminate = checked > 0 && checked < all.length;
    }
  }

  function restore() {
    // A refreshed table comes without ticks: put back the ones the reader made.
    batchForms().forEach((form) => {
      const values = chosen(form);
      boxes(form).forEach((box) => {
        box.checked = values.has(box.value);
      });
      update(form);
    });
  }

  document.addEventListener("change", function (event) {
    const target = event.target;
    if (target.matches('input[name="ids"][form]')) {
      const form = formOf(target);
      if (!form || !form.hasAttribute("data-batch")) return;
      if (target.checked) chosen(form).add(target.value);
      else chosen(form).delete(target.value);
      update(form);
    } else if (target.matches("[data-batch-all]")) {
      const form = batchForms()[0];
      if (!form) return;
      boxes(form).forEach((box) => {
        box.checked = target.checked;
        if (target.checked) chosen(form).add(box.value);
        else chosen(form).delete(box.value);
      });
      update(form);
    }
  });

  // Come back to the list as it is now (filters changed since the page loaded). In the
  // capture phase, so the value is set before htmx reads the form.
  document.addEventListener(
    "submit",
    function (event) {
      const form = event.target;
      if (!form.hasAttribute || !form.hasAttribute("data-batch")) return;
      const next = form.querySelector('input[name="next"]');
      if (next) next.value = window.location.pathname + window.location.search;
    },
    true
  );

  // A batch done in place (htmx): the rows changed, start over.
  document.addEventListener("htmx:afterRequest", function (event) {
    const form = event.detail.elt;
    if (!form || !form.hasAttribute || !form.hasAttribute("data-batch")) return;
    if (!event.detail.successful) return;
    chosen(form).clear();
    form.querySelectorAll("input[type=text]").forEach((input) => {
      input.value = "";
    });
  });

  document.addEventListener("htmx:afterSettle", restore);
  document.addEventListener("DOMContentLoaded", restore);
  // The back button may bring the page with ticks the browser kept.
  window.addEventListener("pageshow", function () {
    batchForms().forEach((form) => {
      boxes(form).forEach((box) => {
        if (box.checked) chosen(form).add(box.value);
      });
      update(form);
    });
  });
})();
