// Minimal stand-ins for the browser's WebSocket and RTCPeerConnection, enough
// to drive MeshPeer's logic in Node under fake timers.

export class FakeWebSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  static all: FakeWebSocket[] = [];
  readyState = 0;
  binaryType = "blob";
  sent: (string | Uint8Array)[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    FakeWebSocket.all.push(this);
  }
  send(d: string | Uint8Array): void {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(d);
  }
  close(code = 1000): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code });
  }
  // test side
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  serverText(obj: unknown): void {
    this.onmessage?.({ data: JSON.stringify(obj) });
  }
  serverBinary(bytes: Uint8Array): void {
    this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
  }
  serverClose(code = 1006): void {
    this.close(code);
  }
  json(): { type: string; [k: string]: unknown }[] {
    return this.sent.filter((s): s is string => typeof s === "string").map((s) => JSON.parse(s));
  }
}

export class FakeDataChannel {
  readyState: "connecting" | "open" | "closing" | "closed" = "connecting";
  binaryType = "blob";
  bufferedAmount = 0;
  sent: Uint8Array[] = [];
  onopen: (() => void) | null = null;
  onclose: (() => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  constructor(
    readonly label: string,
    readonly protocol: string = "",
  ) {}
  send(m: Uint8Array): void {
    if (this.readyState !== "open") throw new Error("not open");
    this.sent.push(m);
  }
  close(): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.onclose?.();
  }
  open(): void {
    this.readyState = "open";
    this.onopen?.();
  }
  recv(bytes: Uint8Array): void {
    this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
  }
}

export class FakePeerConnection {
  static all: FakePeerConnection[] = [];
  connectionState = "new";
  channels: FakeDataChannel[] = [];
  remote: { type: string; sdp: string } | null = null;
  candidates: unknown[] = [];
  closed = false;
  onicecandidate: ((ev: { candidate: unknown }) => void) | null = null;
  onconnectionstatechange: (() => void) | null = null;
  ondatachannel: ((ev: { channel: FakeDataChannel }) => void) | null = null;
  /** Test side: every constructor call throws, as for a browser with WebRTC disabled. */
  static refuseAll = false;
  constructor(readonly config: { iceServers?: { urls: string | string[] }[] }) {
    // As the browser: a URL that is not stun:/turn:/turns: is a SyntaxError.
    const urls = (config?.iceServers ?? []).flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]));
    if (FakePeerConnection.refuseAll || urls.some((u) => !/^(stun|turns?):/.test(u))) {
      throw new SyntaxError(`Failed to construct 'RTCPeerConnection': bad ICE server URL in ${JSON.stringify(urls)}`);
    }
    FakePeerConnection.all.push(this);
  }
  createDataChannel(label: string, options?: { protocol?: string }): FakeDataChannel {
    const dc = new FakeDataChannel(label, options?.protocol);
    this.channels.push(dc);
    return dc;
  }
  async createOffer() {
    return { type: "offer", sdp: "v=0 offer" };
  }
  async createAnswer() {
    return { type: "answer", sdp: "v=0 answer" };
  }
  signalingState: "stable" | "have-local-offer" | "have-remote-offer" | "closed" = "stable";
  async setLocalDescription(d?: { type: string }) {
    if (d?.type === "offer") this.signalingState = "have-local-offer";
    else if (d?.type === "answer") this.signalingState = "stable";
  }
  /** As the browser: an answer is only taken in have-local-offer. */
  async setRemoteDescription(d: { type: string; sdp: string }) {
    if (d.type === "answer" && this.signalingState !== "have-local-offer") {
      throw new DOMException(`Failed to set remote answer sdp: Called in wrong state: ${this.signalingState}`, "InvalidStateError");
    }
    this.signalingState = d.type === "offer" ? "have-remote-offer" : "stable";
    this.remote = d;
  }
  async addIceCandidate(c: unknown) {
    this.candidates.push(c);
  }
  /** As in Chromium: the local side's channels close, but fire no close event (nor does the connection). */
  close(): void {
    this.closed = true;
    this.connectionState = "closed";
    this.signalingState = "closed";
    for (const c of this.channels) c.readyState = "closed";
  }
  // test side: the remote side opened a channel towards us (a meshrelay
  // child names the SDK's subprotocol; an LVQR child names none)
  remoteChannel(protocol = "meshrelay/1"): FakeDataChannel {
    const dc = new FakeDataChannel("meshrelay", protocol);
    this.channels.push(dc);
    this.ondatachannel?.({ channel: dc });
    return dc;
  }
}

export function installFakes(): void {
  FakeWebSocket.all = [];
  FakePeerConnection.all = [];
  FakePeerConnection.refuseAll = false;
  (globalThis as Record<string, unknown>).WebSocket = FakeWebSocket;
  (globalThis as Record<string, unknown>).RTCPeerConnection = FakePeerConnection;
}
