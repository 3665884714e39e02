// One E2GAN concept, run in the visitor's browser by onnxruntime-web: an uploaded photo or the
// camera, edited on this device. Everything model-specific comes from page.json, written by
// `e2gan export --format web`: the ONNX file, its input and output names, layout and value range.
// ?ep=wasm or ?ep=webgpu forces a runtime (default: WebGPU where the browser offers an adapter,
// else WebAssembly); ?threads=N sets WebAssembly's threads (more than one needs a
// cross-origin-isolated page: the studio's server sends the two headers that make it so).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  // What the page is doing, for the curious and for tests (window.e2gan).
  const state = { config: null, session: null, backend: "", size: 0, edits: 0, lastMs: 0,
                  fps: 0, camera: null, outputPixels };
  window.e2gan = state;
  const inputCanvas = $("input"), outputCanvas = $("output");
  const inputContext = inputCanvas.getContext("2d", { willReadFrequently: true });
  const outputContext = outputCanvas.getContext("2d", { willReadFrequently: true });

  const show = (text) => { $("status").textContent = text; };
  const setState = (name) => { document.body.dataset.state = name; };
  function fail(error) {
    $("error").textContent = String((error && error.message) || error);
    setState("error");
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = () => reject(new Error(`cannot load ${src}`));
      document.head.appendChild(script);
    });
  }

  async function hasWebGPU() {
    try { return Boolean(navigator.gpu && await navigator.gpu.requestAdapter()); }
    catch (error) { return false; }
  }

  async function fetchOk(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
    return response;
  }

  async function createSession(bytes, providers) {
    return ort.InferenceSession.create(bytes, { executionProviders: providers,
                                                graphOptimizationLevel: "all",
                                                logSeverityLevel: 3 });  // errors only
  }

  async function init() {
    const config = await (await fetchOk("page.json")).json();
    state.config = config;
    const { input, output } = config;
    if (!String(input.layout).startsWith("NCHW") || !String(input.layout).includes("RGB"))
      throw new Error(`this page feeds NCHW RGB images; the model wants ${input.layout}`);
    document.title = `${config.concept} · E2GAN`;
    $("title").textContent = `${config.concept}: “${config.prompt}”`;
    const wanted = params.get("ep");
    const gpu = wanted === "webgpu" || (wanted !== "wasm" && await hasWebGPU());
    await loadScript(gpu ? config.runtime.webgpu : config.runtime.wasm);
    const isolated = self.crossOriginIsolated === true;
    const threads = Number(params.get("threads")) ||
      (isolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);
    ort.env.logLevel = "error";  // its warnings (constant folding, unused initialisers) are not the visitor's
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.wasmPaths = new URL(config.runtime.folder, location.href).href;
    show(`loading the model (${(config.model_bytes / 1e6).toFixed(1)} MB)…`);
    const bytes = new Uint8Array(await (await fetchOk(config.model)).arrayBuffer());
    let session = null;
    if (gpu) {
      try { session = await createSession(bytes, ["webgpu"]); state.backend = "WebGPU"; }
      catch (error) { console.warn("WebGPU failed, using WebAssembly:", error); }
    }
    if (!session) {
      session = await createSession(bytes, ["wasm"]);
      state.backend = `WebAssembly, ${threads} thread${threads > 1 ? "s" : ""}`;
    }
    for (const [names, name] of [[session.inputNames, input.name], [session.outputNames, output.name]])
      if (!names.includes(name)) throw new Error(`the model has no "${name}" (it has ${names.join(", ")})`);
    state.session = session;
    state.size = input.shape[2];
    for (const canvas of [inputCanvas, outputCanvas]) canvas.width = canvas.height = state.size;
    $("camera").disabled = false;
    show(`ready: ${state.size}×${state.size} px · ${state.backend} · choose a photo or start the camera`);
    setState("ready");
  }

  // The centre square of `source`, scaled to the model's size, on the input canvas.
  function drawSquare(source, width, height) {
    const side = Math.min(width, height), size = state.size;
    inputContext.imageSmoothingQuality = "high";
    inputContext.drawImage(source, (width - side) / 2, (height - side) / 2, side, side, 0, 0, size, size);
  }

  function toTensor() {
    const { name, range: [low, high] } = state.config.input, size = state.size, plane = size * size;
    const pixels = inputContext.getImageData(0, 0, size, size).data;
    const values = new Float32Array(3 * plane), step = (high - low) / 255;
    for (let i = 0; i < plane; i++) {
      values[i] = low + pixels[4 * i] * step;
      values[plane + i] = low + pixels[4 * i + 1] * step;
      values[2 * plane + i] = low + pixels[4 * i + 2] * step;
    }
    return { [name]: new ort.Tensor("float32", values, [1, 3, size, size]) };
  }

  function drawOutput(values) {
    const [low, high] = state.config.output.range, size = state.size, plane = size * size;
    const image = outputContext.createImageData(size, size), scale = 255 / (high - low);
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) {  // a Uint8ClampedArray rounds to nearest, ties to even
        image.data[4 * i + c] = (Math.min(high, Math.max(low, values[c * plane + i])) - low) * scale;
      }
      image.data[4 * i + 3] = 255;
    }
    outputContext.putImageData(image, 0, 0);
  }

  async function editInput() {
    const started = performance.now();
    const results = await state.session.run(toTensor(), [state.config.output.name]);
    const values = results[state.config.output.name].data;
    for (let i = 0; i < values.length; i++)
      if (!Number.isFinite(values[i])) throw new Error("the model's output has non-finite values");
    drawOutput(values);
    state.lastMs = performance.now() - started;
    state.edits += 1;
  }

  function outputPixels() {  // the edited image as shown, RGB row by row
    const data = outputContext.getImageData(0, 0, state.size, state.size).data, rgb = [];
    for (let i = 0; i < data.length; i += 4) rgb.push(data[i], data[i + 1], data[i + 2]);
    return rgb;
  }

  async function editFile(file) {
    stopCamera();
    setState("editing");
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    drawSquare(bitmap, bitmap.width, bitmap.height);
    bitmap.close();
    await editInput();
    show(`edited at ${state.size}×${state.size} px in ${state.lastMs.toFixed(0)} ms · ${state.backend}`);
    setState("edited");
  }

  async function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia)
      throw new Error("this browser gives no camera here: a camera needs https (or localhost); " +
                      "choose a photo instead");
    const stream = await navigator.mediaDevices.getUserMedia(
      { video: { facingMode: "environment", width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    const video = $("video");
    video.srcObject = stream;
    await video.play();
    const camera = { stream, running: true, times: [] };
    state.camera = camera;
    $("camera").textContent = "Stop camera";
    setState("camera");
    while (camera.running) {
      if (video.readyState >= 2 && video.videoWidth) {
        drawSquare(video, video.videoWidth, video.videoHeight);
        await editInput();
        const now = performance.now();
        camera.times.push(now);
        while (camera.times.length > 2 && now - camera.times[0] > 2000) camera.times.shift();
        if (camera.times.length > 1)
          state.fps = (camera.times.length - 1) / ((now - camera.times[0]) / 1000);
        show(`camera · ${state.size}×${state.size} px · ${state.fps.toFixed(1)} frames/s · ` +
             `${state.lastMs.toFixed(0)} ms per frame · ${state.backend}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 0));  // let the page paint
    }
  }

  function stopCamera() {
    const camera = state.camera;
    if (!camera) return;
    camera.running = false;
    camera.stream.getTracks().forEach((track) => track.stop());
    state.camera = null;
    $("camera").textContent = "Start camera";
    if (document.body.dataset.state === "camera") setState("ready");
  }

  $("upload").addEventListener("change", (event) => {
    const file = event.target.files[0];
    event.target.value = "";  // the same file chosen again edits again
    if (file && state.session) editFile(file).catch(fail);
  });
  $("camera").addEventListener("click", () => {
    if (state.camera) stopCamera();
    else startCamera().catch((error) => { stopCamera(); fail(error); });
  });
  init().catch(fail);
})();
