import { palette } from "./colormaps.js";

// W/L on raw values in WebGL2. Where float textures filter (OES_texture_float_linear), the
// stored samples go up as R32F (exact for 8/16-bit integers) and the hardware interpolates; else
// they go up as they are (R16I, R16UI or R8UI) and the shader interpolates four texelFetch.
// Either way the shader applies the rescale, the window (PS3.3 C.11.2.1.2 LINEAR, C.11.2.1.3
// LINEAR_EXACT and SIGMOID) or the image's VOI LUT (a float texture, 4096 entries a row),
// inversion, and draws the overlay planes (an R8 mask) white on top: lut.js's pipeline.
const VERTEX = `#version 300 es
in vec2 a_pos;
void main() { gl_Position = vec4(a_pos, 0.0, 1.0); }`;

const SAMPLE = {
  f: `uniform highp sampler2D u_tex;
float raw(vec2 img) { return texture(u_tex, img / vec2(u_size)).r; }`,
  i: `uniform highp isampler2D u_tex;`,
  u: `uniform highp usampler2D u_tex;`,
};
const FETCH = `float at(ivec2 p) { return float(texelFetch(u_tex, clamp(p, ivec2(0), u_size - 1), 0).r); }
float raw(vec2 img) {
  vec2 q = img - 0.5;  // bilinear between pixel centres
  ivec2 p = ivec2(floor(q));
  vec2 f = q - floor(q);
  return mix(mix(at(p), at(p + ivec2(1, 0)), f.x), mix(at(p + ivec2(0, 1)), at(p + ivec2(1, 1)), f.x), f.y);
}`;

// a server-rendered (colour) image: drawn as it is, inverted on request
const RGB = `#version 300 es
precision highp float;
uniform sampler2D u_tex;
uniform ivec2 u_size;
uniform vec2 u_canvas;
uniform mat3 u_toImage;
uniform bool u_invert;
out vec4 color;
void main() {
  vec2 img = (u_toImage * vec3(gl_FragCoord.x, u_canvas.y - gl_FragCoord.y, 1.0)).xy;
  if (img.x < 0.0 || img.y < 0.0 || img.x >= float(u_size.x) || img.y >= float(u_size.y)) { color = vec4(0, 0, 0, 1); return; }
  vec3 c = texture(u_tex, img / vec2(u_size)).rgb;
  color = vec4(u_invert ? 1.0 - c : c, 1.0);
}`;

// One program per (sample kind, VOI function, overlay on): a software rasteriser runs every branch
// of a runtime switch, so the plain linear window costs no more than it did before LUTs.
const VOI = [
  "return clamp((v - (u_center - 0.5)) / max(u_width - 1.0, 1.0) + 0.5, 0.0, 1.0);", // LINEAR (C.11.2.1.2.1)
  "return clamp((v - u_center) / max(u_width, 1e-9) + 0.5, 0.0, 1.0);", // LINEAR_EXACT (C.11.2.1.3.2)
  "return 1.0 / (1.0 + exp(-4.0 * (v - u_center) / max(u_width, 1e-9)));", // SIGMOID (C.11.2.1.3.1)
  `int k = clamp(int(floor(v + 0.5)) - u_voiFirst, 0, u_voiCount - 1);
  return texelFetch(u_voi, ivec2(k % 4096, k / 4096), 0).r;`, // the VOI LUT (C.11.2.1.1)
];

const fragment = (kind, fn = 0, overlay = false) => kind === "rgb" ? RGB : `#version 300 es
precision highp float;
precision highp int;
uniform ivec2 u_size;
uniform vec2 u_canvas;
uniform mat3 u_toImage;   // canvas pixel (top-left origin) -> image pixel
uniform float u_slope, u_intercept, u_center, u_width;
uniform sampler2D u_voi;  // R32F: the VOI LUT's outputs in [0, 1]
uniform int u_voiFirst, u_voiCount;
uniform sampler2D u_overlay;  // R8: 1 where an overlay plane covers the pixel
uniform bool u_invert;
uniform float u_sharpen;  // 0: off; else the weight of the Laplacian subtracted (a 3x3 sharpening kernel)
uniform sampler2D u_palette;  // 256 x 1 RGBA: the pseudo-colour map (grey by default)
out vec4 color;
${SAMPLE[kind]}
${kind === "f" ? "" : FETCH}
float voi(float v) {
  ${VOI[fn]}
}
void main() {
  vec2 canvasPos = vec2(gl_FragCoord.x, u_canvas.y - gl_FragCoord.y);
  vec2 img = (u_toImage * vec3(canvasPos, 1.0)).xy;
  if (img.x < 0.0 || img.y < 0.0 || img.x >= float(u_size.x) || img.y >= float(u_size.y)) {
    color = vec4(0.0, 0.0, 0.0, 1.0);
    return;
  }
  ${overlay ? "if (texelFetch(u_overlay, ivec2(floor(img)), 0).r > 0.0) { color = vec4(1.0); return; }" : ""}
  float r = raw(img);
  if (u_sharpen > 0.0) {  // on the raw values, before the window: the same kernel as the canvas path
    r += u_sharpen * (4.0 * r - raw(img + vec2(1.0, 0.0)) - raw(img - vec2(1.0, 0.0))
                              - raw(img + vec2(0.0, 1.0)) - raw(img - vec2(0.0, 1.0)));
  }
  float g = voi(r * u_slope + u_intercept);
  if (u_invert) g = 1.0 - g;
  color = vec4(texelFetch(u_palette, ivec2(int(floor(g * 255.0 + 0.5)), 0), 0).rgb, 1.0);
}`;

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
  return shader;
}

function program(gl, kind, fn, overlay) {
  const p = gl.createProgram();
  gl.attachShader(p, compile(gl, gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(p, compile(gl, gl.FRAGMENT_SHADER, fragment(kind, fn, overlay)));
  gl.bindAttribLocation(p, 0, "a_pos");
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(p));
  const u = {};
  for (const name of ["u_tex", "u_size", "u_canvas", "u_toImage", "u_slope", "u_intercept", "u_center", "u_width", "u_invert", "u_palette", "u_sharpen",
    "u_voi", "u_voiFirst", "u_voiCount", "u_overlay"]) {
    u[name] = gl.getUniformLocation(p, name);
  }
  return { p, u };
}

export class GlRenderer {
  static create(canvas, integerTextures = false) {
    // preserveDrawingBuffer: screenshots and tests read the canvas back after the frame
    const gl = canvas.getContext("webgl2", { preserveDrawingBuffer: true, antialias: false, alpha: false });
    return gl ? new GlRenderer(gl, integerTextures) : null;
  }

  constructor(gl, integerTextures) {
    this.kind = "webgl2";
    this.gl = gl;
    this.floatLinear = !integerTextures && !!gl.getExtension("OES_texture_float_linear");
    this.programs = {};
    this.program = (kind, fn = 0, overlay = false) => (this.programs[`${kind}/${fn}/${overlay}`] ??= program(gl, kind, fn, overlay));
    const buffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
    this.texture = gl.createTexture();
    this.paletteTexture = gl.createTexture();
    this.paletteName = null;
    this.uploaded = null;
    this.voiTexture = gl.createTexture();
    this.voiUploaded = null;
    this.overlayTexture = gl.createTexture();
    this.overlayUploaded = null;
    // 1x1 placeholders: a sampler on an empty texture unit makes Chromium warn on every draw
    this.bindTable(2, this.voiTexture, new Float32Array(1), "voiUploaded", (data) =>
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.R32F, 1, 1, 0, gl.RED, gl.FLOAT, data));
    this.bindTable(3, this.overlayTexture, new Uint8Array(1), "overlayUploaded", (data) =>
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.R8, 1, 1, 0, gl.RED, gl.UNSIGNED_BYTE, data));
    gl.activeTexture(gl.TEXTURE0);
  }

  /** Bind `data` to texture unit `unit` as `texture`, uploading it by `make` when it changed. */
  bindTable(unit, texture, data, uploadedKey, make) {
    const gl = this.gl;
    gl.activeTexture(gl.TEXTURE0 + unit);
    gl.bindTexture(gl.TEXTURE_2D, texture);
    if (data && this[uploadedKey] !== data) {
      gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
      make(data);
      for (const q of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, q, gl.NEAREST);
      this[uploadedKey] = data;
    }
  }

  bindPalette(name) {
    const gl = this.gl;
    gl.activeTexture(gl.TEXTURE1);
    gl.bindTexture(gl.TEXTURE_2D, this.paletteTexture);
    if (this.paletteName !== name) {
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, 256, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, palette(name));
      for (const q of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, q, gl.NEAREST);
      this.paletteName = name;
    }
  }

  /** True on a software rasteriser, where every fragment costs CPU time. */
  software() {
    const gl = this.gl, info = gl.getExtension("WEBGL_debug_renderer_info");
    const name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    return /swiftshader|llvmpipe|software|softpipe/i.test(name);
  }

  kindOf(image) {
    if (image.bitmap) return "rgb";
    return this.floatLinear ? "f" : image.pixels instanceof Int16Array ? "i" : "u";
  }

  upload(image) {
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    const px = image.pixels;
    let filter = gl.NEAREST;
    if (image.bitmap) {
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, image.bitmap);
      filter = gl.LINEAR;
    } else if (this.floatLinear) {
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.R32F, image.columns, image.rows, 0, gl.RED, gl.FLOAT, Float32Array.from(px));
      filter = gl.LINEAR;
    } else {
      const [internal, type] = px instanceof Int16Array ? [gl.R16I, gl.SHORT]
        : px instanceof Uint16Array ? [gl.R16UI, gl.UNSIGNED_SHORT] : [gl.R8UI, gl.UNSIGNED_BYTE];
      gl.texImage2D(gl.TEXTURE_2D, 0, internal, image.columns, image.rows, 0, gl.RED_INTEGER, type, px);
    }
    for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, filter);
    for (const p of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T]) gl.texParameteri(gl.TEXTURE_2D, p, gl.CLAMP_TO_EDGE);
    this.uploaded = image;
  }

  /** Draw `image` with view `v` ({center, width, invert, toImage: 3x3 column-major}). */
  draw(image, v) {
    const gl = this.gl, canvas = gl.canvas;
    gl.viewport(0, 0, canvas.width, canvas.height);
    if (!image) { gl.clearColor(0, 0, 0, 1); gl.clear(gl.COLOR_BUFFER_BIT); return; }
    if (this.uploaded !== image) this.upload(image);
    const voi = v.voi && image.voi ? image.voi : null, overlay = v.overlays !== false && image.overlay ? image.overlay : null;
    const fn = voi ? 3 : ({ LINEAR_EXACT: 1, SIGMOID: 2 }[v.fn] || 0);
    const { p, u } = this.program(this.kindOf(image), fn, !!overlay);
    gl.useProgram(p);
    this.bindPalette(v.colormap || "grey");
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    gl.uniform1i(u.u_tex, 0);
    gl.uniform1i(u.u_palette, 1);
    gl.uniform2i(u.u_size, image.columns, image.rows);
    gl.uniform2f(u.u_canvas, canvas.width, canvas.height);
    gl.uniformMatrix3fv(u.u_toImage, false, v.toImage);
    gl.uniform1f(u.u_slope, image.slope);
    gl.uniform1f(u.u_intercept, image.intercept);
    gl.uniform1f(u.u_center, v.center);
    gl.uniform1f(u.u_width, v.width);
    gl.uniform1i(u.u_invert, v.invert !== Boolean(image.monochrome1) ? 1 : 0);
    if (u.u_sharpen) gl.uniform1f(u.u_sharpen, v.sharpen || 0);
    if (voi) {
      this.bindTable(2, this.voiTexture, voi, "voiUploaded", () => {
        const w = Math.min(voi.count, 4096), h = Math.ceil(voi.count / 4096), data = new Float32Array(w * h);
        data.set(voi.unit);
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.R32F, w, h, 0, gl.RED, gl.FLOAT, data);
      });
      gl.uniform1i(u.u_voi, 2);
      gl.uniform1i(u.u_voiFirst, voi.first);
      gl.uniform1i(u.u_voiCount, voi.count);
      gl.activeTexture(gl.TEXTURE0);
    }
    if (overlay) {
      this.bindTable(3, this.overlayTexture, overlay, "overlayUploaded", () =>
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.R8, image.columns, image.rows, 0, gl.RED, gl.UNSIGNED_BYTE, overlay));
      gl.uniform1i(u.u_overlay, 3);
      gl.activeTexture(gl.TEXTURE0);
    }
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }
}
