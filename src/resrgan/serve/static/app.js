// resrgan serve: the page. No build step, no dependencies; every string from the server or from a
// file name goes into the page as text (textContent), never as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const items = []; // {file, name, url, li, id, job, error}
  const byId = new Map();
  let config = null;
  let version = -1;
  let polling = false;
  let selected = null;
  let zoom = "fit";

  // ------------------------------------------------------------------ helpers
  function say(text) {
    $("status").textContent = text;
  }

  function mb(bytes) {
    return `${(bytes / (1024 * 1024)).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MB`;
  }

  function ordinal(n) {
    const s = ["th", "st", "nd", "rd"];
    const v = n % 100;
    return n + (s[(v - 20) % 10] || s[v] || s[0]);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function currentModel() {
    return config.models.find((m) => m.name === $("model").value) || config.models[0];
  }

  // ------------------------------------------------------------------ settings
  async function init() {
    try {
      const r = await fetch("/api/config");
      config = await r.json();
    } catch (e) {
      say("Cannot reach the server: is resrgan serve still running?");
      return;
    }
    const model = $("model");
    for (const m of config.models) {
      const o = el("option", null, m.name);
      o.value = m.name;
      model.append(o);
    }
    model.value = config.default_model;
    const tile = $("tile");
    for (const t of config.tiles) {
      const o = el("option", null, t === "auto" ? "auto" : t === 0 ? "no tiling" : `${t} px`);
      o.value = String(t);
      tile.append(o);
    }
    tile.value = "auto";
    $("outscale").max = String(config.max_outscale);
    model.addEventListener("change", modelChanged);
    $("denoise").addEventListener("input", () => {
      $("denoise-out").textContent = Number($("denoise").value).toFixed(2);
    });
    modelChanged();
    const mp = (config.max_pixels / 1e6).toFixed(1);
    $("limits").textContent =
      `PNG, JPEG, WebP, TIFF, BMP or GIF; up to ${config.max_files} files and ` +
      `${mb(config.max_upload_bytes)} per upload, ${mp} megapixels per image.`;
    say("Ready: drop images or choose them.");
  }

  function modelChanged() {
    const m = currentModel();
    $("model-desc").textContent = m.description;
    $("outscale").value = String(m.scale);
    $("denoise").disabled = !m.denoise;
    $("denoise-hint").textContent = m.denoise
      ? "0 keeps noise, 1 removes the most."
      : "Only realesr-general-x4v3 takes a denoise strength.";
  }

  // ------------------------------------------------------------------ adding files
  function addItem(file) {
    const li = el("li", "item");
    const name = el("span", "name", file.name || "unnamed");
    const state = el("span", "state", "waiting to upload");
    const bar = el("progress");
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute("aria-label", `${file.name}: progress`);
    const acts = el("span", "item-actions");
    const show = el("button", "show", "Compare");
    show.type = "button";
    show.disabled = true;
    show.setAttribute("aria-label", `Compare ${file.name}`);
    const dl = el("a", "button dl", "Download");
    dl.hidden = true;
    dl.setAttribute("aria-label", `Download ${file.name}`);
    acts.append(show, dl);
    li.append(name, state, bar, acts);
    $("list").append(li);
    const item = { file, name: file.name, url: URL.createObjectURL(file), li, state, bar, show, dl };
    show.addEventListener("click", () => select(item, true));
    items.push(item);
    return item;
  }

  function fail(item, reason) {
    item.error = reason;
    item.li.className = "item error";
    item.state.textContent = reason;
    item.bar.hidden = true;
  }

  async function addFiles(fileList) {
    if (!config) return;
    const fresh = Array.from(fileList).map(addItem);
    const batches = [];
    let batch = [];
    let bytes = 0;
    for (const item of fresh) {
      const size = item.file.size + 1024; // + the part's headers
      if (size > config.max_upload_bytes) {
        fail(item, `larger than the ${mb(config.max_upload_bytes)} upload limit`);
        continue;
      }
      if (batch.length >= config.max_files || bytes + size > config.max_upload_bytes) {
        batches.push(batch);
        batch = [];
        bytes = 0;
      }
      batch.push(item);
      bytes += size;
    }
    if (batch.length) batches.push(batch);
    for (const b of batches) await upload(b);
    poll();
  }

  function upload(batch) {
    const m = currentModel();
    const form = new FormData();
    form.append("model", m.name);
    form.append("outscale", $("outscale").value);
    form.append("denoise", $("denoise").value);
    form.append("tile", $("tile").value);
    for (const item of batch) form.append("files", item.file, item.file.name);
    for (const item of batch) item.state.textContent = "uploading";
    const what = batch.length === 1 ? batch[0].name : `${batch.length} images`;
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/jobs");
      xhr.responseType = "json";
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) say(`Uploading ${what}: ${Math.round((100 * e.loaded) / e.total)} %`);
      });
      xhr.addEventListener("load", () => {
        const body = xhr.response || {};
        const files = Array.isArray(body.files) ? body.files : null;
        if (files && files.length === batch.length) {
          files.forEach((f, i) => {
            const item = batch[i];
            if (f.error) {
              fail(item, f.error);
            } else {
              item.id = f.id;
              byId.set(f.id, item);
              item.state.textContent = "queued";
            }
          });
        } else {
          const reason = body.detail || `the server answered ${xhr.status}`;
          for (const item of batch) fail(item, reason);
        }
        const refused = batch.filter((i) => i.error).length;
        say(
          refused
            ? `${what}: ${refused} refused, ${batch.length - refused} queued`
            : `${what}: queued`
        );
        resolve();
      });
      xhr.addEventListener("error", () => {
        for (const item of batch) fail(item, "the upload failed (connection closed)");
        say(`Uploading ${what} failed: the server closed the connection`);
        resolve();
      });
      xhr.send(form);
    });
  }

  // ------------------------------------------------------------------ progress
  function pending() {
    return items.filter((i) => i.id && !i.error && (!i.job || i.job.state === "queued" || i.job.state === "running"));
  }

  async function poll() {
    if (polling) return;
    polling = true;
    try {
      while (pending().length) {
        const ids = pending().map((i) => i.id).join(",");
        let data;
        try {
          const r = await fetch(`/api/jobs?ids=${encodeURIComponent(ids)}&since=${version}&wait=20`);
          data = await r.json();
        } catch (e) {
          say("Lost contact with the server; retrying…");
          await new Promise((ok) => setTimeout(ok, 2000));
          continue;
        }
        version = data.version;
        for (const job of data.jobs) {
          const item = byId.get(job.id);
          if (item) update(item, job);
        }
        summarise();
      }
    } finally {
      polling = false;
    }
  }

  function update(item, job) {
    const before = item.job ? item.job.state : null;
    item.job = job;
    if (job.state === "queued") {
      item.state.textContent = `waiting: ${ordinal(job.position)} in line`;
    } else if (job.state === "running") {
      if (job.phase === "upscaling" && job.total) {
        item.state.textContent = `upscaling: tile ${job.done} of ${job.total}`;
        item.bar.value = job.done / job.total;
      } else {
        item.state.textContent = job.phase;
        if (job.phase === "saving") item.bar.value = 1;
      }
    } else if (job.state === "done") {
      item.li.className = "item done";
      item.bar.value = 1;
      item.bar.hidden = true;
      item.state.textContent = `done: ${job.width} × ${job.height} in ${job.seconds.toFixed(1)} s`;
      item.show.disabled = false;
      item.dl.href = job.download;
      item.dl.download = job.download_name;
      item.dl.hidden = false;
      $("zip").disabled = false;
      if (before !== "done" && !selected) select(item, false);
    } else if (job.state === "error") {
      fail(item, job.error);
    } else if (job.state === "gone") {
      fail(item, "deleted on the server (expired or cancelled)");
    }
  }

  function summarise() {
    const running = items.find((i) => i.job && i.job.state === "running");
    const waiting = items.filter((i) => i.job && i.job.state === "queued").length;
    const done = items.filter((i) => i.job && i.job.state === "done").length;
    const failed = items.filter((i) => i.error).length;
    if (running) {
      say(`Upscaling ${running.name}${waiting ? `; ${waiting} waiting` : ""}`);
    } else if (!pending().length) {
      say(`Finished: ${done} done${failed ? `, ${failed} failed` : ""}.`);
    }
  }

  // ------------------------------------------------------------------ the view
  function select(item, focus) {
    if (!item.job || item.job.state !== "done") return;
    if (selected) selected.li.classList.remove("selected");
    selected = item;
    item.li.classList.add("selected");
    $("viewer").hidden = false;
    $("view-name").textContent = item.name;
    $("view-note").textContent = "";
    $("view-download").href = item.job.download;
    $("view-download").download = item.job.download_name;
    const before = $("before");
    before.hidden = false;
    before.alt = `${item.name}, before`;
    before.src = item.url;
    const after = $("after");
    after.alt = `${item.name}, upscaled to ${item.job.width} × ${item.job.height}`;
    after.src = item.job.result;
    zoom = "fit";
    applyZoom();
    if (focus) $("view").focus();
  }

  function applyZoom() {
    if (!selected) return;
    const w = selected.job.width;
    const h = selected.job.height;
    const view = $("view");
    let scale = zoom;
    if (zoom === "fit") {
      const room = Math.max(200, window.innerHeight * 0.72);
      scale = Math.min(1, (view.clientWidth - 2) / w, room / h);
    }
    const stage = $("stage");
    stage.style.width = `${Math.round(w * scale)}px`;
    stage.style.height = `${Math.round(h * scale)}px`;
    $("zoom-level").textContent = zoom === "fit" ? `fit (${Math.round(scale * 100)} %)` : `${Math.round(scale * 100)} %`;
    const pixelated = scale >= 2 ? "pixelated" : "auto";
    $("after").style.imageRendering = pixelated;
  }

  function zoomBy(factor) {
    if (!selected) return;
    let current = zoom;
    if (current === "fit") current = $("stage").clientWidth / selected.job.width;
    zoom = Math.min(8, Math.max(0.05, current * factor));
    applyZoom();
  }

  function setSplit(v) {
    v = Math.max(0, Math.min(100, v));
    $("split").value = String(v);
    $("before").style.clipPath = `inset(0 ${100 - v}% 0 0)`;
    $("divider").style.left = `${v}%`;
    $("split").setAttribute("aria-valuetext", `${Math.round(v)} % before, ${Math.round(100 - v)} % after`);
  }

  function splitFromPointer(e) {
    const rect = $("stage").getBoundingClientRect();
    if (rect.width > 0) setSplit(((e.clientX - rect.left) / rect.width) * 100);
  }

  // ------------------------------------------------------------------ wiring
  function wire() {
    $("files").addEventListener("change", (e) => {
      addFiles(e.target.files);
      e.target.value = "";
    });
    const drop = $("drop");
    document.addEventListener("dragover", (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
    document.addEventListener("dragleave", (e) => {
      if (!e.relatedTarget) drop.classList.remove("over");
    });
    document.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer && e.dataTransfer.files.length) addFiles(e.dataTransfer.files);
    });
    $("zip").addEventListener("click", () => {
      const ids = items.filter((i) => i.job && i.job.state === "done").map((i) => i.id);
      if (!ids.length) return;
      const a = el("a");
      a.href = `/api/zip?ids=${encodeURIComponent(ids.join(","))}`;
      a.download = "";
      document.body.append(a);
      a.click();
      a.remove();
      say(`Downloading ${ids.length} result${ids.length > 1 ? "s" : ""} as a zip`);
    });
    $("split").addEventListener("input", (e) => setSplit(Number(e.target.value)));
    const stage = $("stage");
    stage.addEventListener("pointerdown", (e) => {
      stage.setPointerCapture(e.pointerId);
      splitFromPointer(e);
    });
    stage.addEventListener("pointermove", (e) => {
      if (e.buttons & 1) splitFromPointer(e);
    });
    $("zoom-in").addEventListener("click", () => zoomBy(1.25));
    $("zoom-out").addEventListener("click", () => zoomBy(0.8));
    $("zoom-fit").addEventListener("click", () => {
      zoom = "fit";
      applyZoom();
    });
    $("zoom-1").addEventListener("click", () => {
      zoom = 1;
      applyZoom();
    });
    $("view").addEventListener("keydown", (e) => {
      const keys = { "+": () => zoomBy(1.25), "=": () => zoomBy(1.25), "-": () => zoomBy(0.8) };
      keys["0"] = () => { zoom = "fit"; applyZoom(); };
      keys["1"] = () => { zoom = 1; applyZoom(); };
      if (keys[e.key]) {
        e.preventDefault();
        keys[e.key]();
      }
    });
    $("before").addEventListener("error", () => {
      $("before").hidden = true;
      $("view-note").textContent = "This browser cannot show the original file; only the result is shown.";
    });
    window.addEventListener("resize", () => zoom === "fit" && applyZoom());
    setSplit(50);
  }

  wire();
  init();
})();
