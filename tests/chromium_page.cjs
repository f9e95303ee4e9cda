// Opens an HTML file in headless Chromium (puppeteer, installed with mermaid-cli) at a given
// width and prints what a reader would meet, as JSON: console errors, whether the page scrolls
// sideways, and where the elements matching a selector are. Used by tests/test_user_tools.py.
// node chromium_page.cjs CHROMIUM FILE WIDTH SELECTOR
const puppeteer = require("puppeteer");

(async () => {
  const [chromium, file, width, selector] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu"],
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("requestfailed", (r) => errors.push("request failed: " + r.url()));
    await page.setViewport({ width: Number(width), height: 800 });
    await page.goto("file://" + file, { waitUntil: "load" });
    const found = await page.evaluate((sel) => {
      const root = document.documentElement;
      return {
        pageWidth: root.scrollWidth,
        viewWidth: root.clientWidth,
        pageHeight: root.scrollHeight,
        matches: [...document.querySelectorAll(sel)].map((e) => {
          const box = e.getBoundingClientRect();
          return { top: box.top + window.scrollY, text: e.textContent.slice(0, 200) };
        }),
        colours: [...document.querySelectorAll("td.status")].map(
          (e) => [e.textContent, getComputedStyle(e).color]),
      };
    }, selector);
    console.log(JSON.stringify({ errors, ...found }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
