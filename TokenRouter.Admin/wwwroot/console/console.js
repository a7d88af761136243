// TokenRouter console: the one bit of script it needs, the copy button next to a new key. Everything else works
// without JavaScript. Delegated, so it keeps working after Blazor's enhanced navigation replaces the page content.
(() => {
  "use strict";

  const reveal = () => document.querySelectorAll("button[data-copy][hidden]").forEach((b) => { b.hidden = false; });

  async function copy(text, input) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    // Plain http on another host is not a secure context: fall back to selecting and copying.
    input.focus();
    input.select();
    if (!document.execCommand("copy")) throw new Error("copy refused");
  }

  document.addEventListener("click", async (event) => {
    const button = event.target instanceof Element ? event.target.closest("button[data-copy]") : null;
    if (!button) return;
    const input = document.getElementById(button.dataset.copy);
    if (!input) return;
    const status = button.closest("section, div")?.parentElement?.querySelector(".copy-status");
    try {
      await copy(input.value, input);
      button.textContent = "Copied";
      if (status) status.textContent = "Copied to the clipboard.";
    } catch {
      input.focus();
      input.select();
      if (status) status.textContent = "Could not copy: the key is selected, press Ctrl+C (⌘C).";
    }
  });

  reveal();
  document.addEventListener("DOMContentLoaded", reveal);
  // Blazor raises this after an enhanced navigation or form post has updated the page.
  if (window.Blazor && typeof window.Blazor.addEventListener === "function") {
    window.Blazor.addEventListener("enhancedload", reveal);
  } else {
    document.addEventListener("DOMContentLoaded", () => window.Blazor?.addEventListener?.("enhancedload", reveal));
  }
})();
