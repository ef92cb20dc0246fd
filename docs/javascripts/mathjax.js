// MathJax configuration for pymdownx.arithmatex (generic mode): maths is
// wrapped in \( \) / \[ \] inside elements of class "arithmatex". MathJax itself
// is served by the site (javascripts/mathjax/, copied from an installed package
// by docs/_ext/mathjax_local.py): no CDN, the pages read their maths offline.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

// mkdocs-material's instant navigation swaps pages without a reload: typeset the
// new page once MathJax is ready. No output.clearCache() here: it drops the CSS
// of the glyphs already typeset on the page, which then show as blanks.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      MathJax.startup.promise.then(() => {
        MathJax.typesetClear();
        MathJax.texReset();
        return MathJax.typesetPromise();
      });
    }
  });
}
