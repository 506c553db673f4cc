"""The Review page's keyboard flow, in the browser: the shortcut keys work again after a filter is used, and E puts
the cursor in the editor.

Streamlit ignores a shortcut while an input has the focus (a text field, a select box, a toggle), and a filter keeps
the focus after it is used, so K / D / J would do nothing until the reviewer clicked somewhere. The listener below
(installed once per browser tab) hands the focus back to the page after a choice in a select box, a toggle, or
Enter / Esc in a text field; text areas keep theirs (Esc there is the editor's Cancel shortcut).
"""

from __future__ import annotations

import streamlit as st

_LISTENER = """<script>
(() => {
  if (window.__csKeys) return;
  window.__csKeys = true;
  const release = () => setTimeout(() => {
    const a = document.activeElement;
    if (a && a.tagName === "INPUT") a.blur();
  }, 60);
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t && t.tagName === "INPUT" && (e.key === "Escape" || (e.key === "Enter" && !t.closest("[role=dialog]"))))
      release();
  }, true);
  document.addEventListener("click", (e) => {
    if (e.target.closest && e.target.closest("[role=option], [data-testid=stCheckbox], [data-testid=stToggle]"))
      release();
  }, true);
})();
</script>"""

_FOCUS = """<script>
(() => {
  let tries = 0;
  const put = () => {
    const area = document.querySelector('textarea[aria-label="%s"]');
    if (!area) { if (tries++ < 40) setTimeout(put, 50); return; }
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  };
  put();
})();
/* %s */
</script>"""


def install() -> None:
    """The focus listener (a no-op after the first run in a tab)."""
    st.html(_LISTENER, unsafe_allow_javascript=True)


def focus_text_area(label: str, nonce: str) -> None:
    """Put the cursor at the end of the text area labelled `label` once it is drawn; nonce: a new value for each
    time the editor opens (the script runs when its element is new)."""
    st.html(_FOCUS % (label.replace('"', ""), nonce.replace("*/", "")), unsafe_allow_javascript=True)
