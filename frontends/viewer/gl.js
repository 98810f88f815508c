// W/L on raw values in WebGL2: the stored samples go to an integer texture as they are (R16I,
// R16UI or R8UI, no conversion), the fragment shader interpolates the modality values
// (rescale), applies the window (PS3.3 C.11.2.1.2 linear) and the inversion.
const VERTEX = `#version 300 es
in vec2 a_pos;
void main() { gl_Position = vec4(a_pos, 0.0, 1.0); }`;

const fragment = (prefix) => `#version 300 es
precision highp float;
precision highp int;
uniform highp ${prefix}sampler2D u_tex;
uniform ivec2 u_size;
uniform vec2 u_canvas;
uniform mat3 u_toImage;   // canvas pixel (top-left origin) -> image pixel
uniform float u_slope, u_intercept, u_center, u_width;
uniform bool u_invert;
out vec4 color;
float modality(ivec2 p) {
  p = clamp(p, ivec2(0), u_size - 1);
  return float(texelFetch(u_tex, p, 0).r) * u_slope + u_intercept;
}
void main() {
  vec2 canvasPos = vec2(gl_FragCoord.x, u_canvas.y - gl_FragCoord.y);
  vec2 img = (u_toImage * vec3(canvasPos, 1.0)).xy;
  if (img.x < 0.0 || img.y < 0.0 || img.x >= float(u_size.x) || img.y >= float(u_size.y)) {
    color = vec4(0.0, 0.0, 0.0, 1.0);
    return;
  }
  vec2 q = img - 0.5;  // bilinear between pixel centres
  ivec2 p = ivec2(floor(q));
  vec2 f = q - floor(q);
  float v = mix(mix(modality(p), modality(p + ivec2(1, 0)), f.x),
                mix(modality(p + ivec2(0, 1)), modality(p + ivec2(1, 1)), f.x), f.y);
  float g = clamp((v - (u_center - 0.5)) / max(u_width - 1.0, 1.0) + 0.5, 0.0, 1.0);
  if (u_invert) g = 1.0 - g;
  color = vec4(g, g, g, 1.0);
}`;

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
  return shader;
}

function program(gl, prefix) {
  const p = gl.createProgram();
  gl.attachShader(p, compile(gl, gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(p, compile(gl, gl.FRAGMENT_SHADER, fragment(prefix)));
  gl.bindAttribLocation(p, 0, "a_pos");
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(p));
  const u = {};
  for (const name of ["u_tex", "u_size", "u_canvas", "u_toImage", "u_slope", "u_intercept", "u_center", "u_width", "u_invert"]) {
    u[name] = gl.getUniformLocation(p, name);
  }
  return { p, u };
}

export class GlRenderer {
  static create(canvas) {
    // preserveDrawingBuffer: screenshots and tests read the canvas back after the frame
    const gl = canvas.getContext("webgl2", { preserveDrawingBuffer: true, antialias: false, alpha: false });
    return gl ? new GlRenderer(gl) : null;
  }

  constructor(gl) {
    this.kind = "webgl2";
    this.gl = gl;
    this.programs = { i: program(gl, "i"), u: program(gl, "u") };
    const buffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
    this.texture = gl.createTexture();
    this.uploaded = null;
  }

  upload(image) {
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    const px = image.pixels;
    const [internal, type] = px instanceof Int16Array ? [gl.R16I, gl.SHORT]
      : px instanceof Uint16Array ? [gl.R16UI, gl.UNSIGNED_SHORT] : [gl.R8UI, gl.UNSIGNED_BYTE];
    gl.texImage2D(gl.TEXTURE_2D, 0, internal, image.columns, image.rows, 0, gl.RED_INTEGER, type, px);
    for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
    this.uploaded = image;
  }

  /** Draw `image` with view `v` ({center, width, invert, toImage: 3x3 column-major}). */
  draw(image, v) {
    const gl = this.gl, canvas = gl.canvas;
    gl.viewport(0, 0, canvas.width, canvas.height);
    if (!image) { gl.clearColor(0, 0, 0, 1); gl.clear(gl.COLOR_BUFFER_BIT); return; }
    if (this.uploaded !== image) this.upload(image);
    const { p, u } = image.pixels instanceof Int16Array ? this.programs.i : this.programs.u;
    gl.useProgram(p);
    gl.uniform1i(u.u_tex, 0);
    gl.uniform2i(u.u_size, image.columns, image.rows);
    gl.uniform2f(u.u_canvas, canvas.width, canvas.height);
    gl.uniformMatrix3fv(u.u_toImage, false, v.toImage);
    gl.uniform1f(u.u_slope, image.slope);
    gl.uniform1f(u.u_intercept, image.intercept);
    gl.uniform1f(u.u_center, v.center);
    gl.uniform1f(u.u_width, v.width);
    gl.uniform1i(u.u_invert, v.invert !== image.monochrome1 ? 1 : 0);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }
}
