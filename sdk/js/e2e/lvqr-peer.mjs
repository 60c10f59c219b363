// A test double of LVQR's browser client (`MeshPeer` in LVQR's
// bindings/js/packages/core/src/mesh.ts), written for these tests because
// that client is on no registry. It does what that client does, on the wire
// and in how it keeps its links, defects included, since the point is to
// check that meshrelay serves such a client unchanged:
//
// - Register carries peer_id, track and capacity (left out when unset), no
//   `features`; no Heartbeat is ever sent (the browser's pongs keep the
//   session alive); ForwardReport once a second when the count changed.
// - Every AssignParent with a parent_id opens a new connection to that parent
//   (one ordered DataChannel `media`, no protocol) and sends an Offer. The
//   previous parent connection is not closed, only forgotten, and a role
//   change to Root does nothing at all.
// - Every Offer makes a new connection stored as that child, replacing any
//   previous one under the same id without closing it.
// - PeerLeft closes a child of that id; a PeerLeft naming anything else,
//   the parent included, is ignored.
// - Every message of every parent connection still alive, old or current,
//   goes to onFrame and, unchanged, to every open child: one message is one
//   object `[u64 BE id][payload]`, there is no notion of chunks.
//
// Beyond LVQR's API there are only observation hooks (the link a message
// came on, every signal message, the state of every connection ever made);
// they change nothing on the wire.

/** LVQR's default when the config gives no ICE servers. */
const DEFAULT_ICE = [{ urls: "stun:stun.l.google.com:19302" }];

/** One mesh peer that links, forwards and signals as LVQR's client does (see above). */
export class LvqrPeer {
  /**
   * `cfg`: signalUrl, peerId, track, capacity?, iceServers?, and the hooks
   * onFrame(bytes, parentId), onChildOpen(childId), onSignal(message),
   * onError(where, error). Nothing happens before connect().
   */
  constructor(cfg) {
    this.cfg = cfg;
    this.signal = null;
    this.role = "unknown";
    this.parentId = null;
    /** The parent connection LVQR would still reference: the latest one. */
    this.parentConn = null;
    /** child id -> {peerId, pc, dc}: the connections LVQR would reference. */
    this.children = new Map();
    this.iceConfig = { iceServers: cfg.iceServers ?? DEFAULT_ICE };
    this.forwarded = 0;
    this.reported = 0;
    this.reportTimer = null;
    // Observation only: LVQR drops its references to replaced connections,
    // but they live on (and deliver) until closed; the tests need to see them.
    this.allParentConns = [];
    this.allChildConns = [];
  }

  /** Resolves once the signal socket is open and Register has been sent, as LVQR's connect() does. */
  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.cfg.signalUrl);
      this.signal = ws;
      ws.onopen = () => {
        // JSON.stringify leaves out an undefined capacity, as LVQR relies on.
        this.send({ type: "Register", peer_id: this.cfg.peerId, track: this.cfg.track, capacity: this.cfg.capacity });
        this.startReports();
        resolve();
      };
      ws.onerror = () => reject(new Error("signal connection failed"));
      ws.onmessage = (ev) => {
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch {
          return;
        }
        this.cfg.onSignal?.(msg);
        this.dispatch(msg);
      };
      ws.onclose = () => {
        this.signal = null;
        this.stopReports();
      };
    });
  }

  /** Closes every connection this peer still references and the signal socket. */
  close() {
    this.stopReports();
    this.parentConn?.pc.close();
    this.parentConn = null;
    for (const c of this.children.values()) c.pc.close();
    this.children.clear();
    this.signal?.close();
    this.signal = null;
  }

  /** Role from the last AssignParent ("unknown" before the first). */
  get peerRole() {
    return this.role;
  }

  /** parent_id of the last AssignParent (null for a root or before the first). */
  get parentPeerId() {
    return this.parentId;
  }

  /** Entries in the child map, open or not, as LVQR counts them. */
  get childCount() {
    return this.children.size;
  }

  /** Sends to children so far, the figure ForwardReport carries. */
  get forwardedFrameCount() {
    return this.forwarded;
  }

  /** Sends `bytes` unchanged to every open child; onFrame is not called (the integrator has them). */
  pushFrame(bytes) {
    this.forwardToChildren(bytes);
  }

  /**
   * Observation: every parent and child connection ever made, with whether
   * this peer still references it and its DataChannel's state.
   */
  links() {
    const state = (c) => c.dc?.readyState ?? "none";
    return {
      parents: this.allParentConns.map((c) => ({
        peerId: c.peerId,
        current: c === this.parentConn,
        state: state(c),
        maxMessageSize: c.pc.sctp?.maxMessageSize ?? null,
      })),
      children: this.allChildConns.map((c) => ({
        peerId: c.peerId,
        current: this.children.get(c.peerId) === c,
        state: state(c),
      })),
    };
  }

  dispatch(msg) {
    const failed = (where) => (e) => this.cfg.onError?.(where, e);
    switch (msg.type) {
      case "AssignParent":
        this.onAssign(msg);
        break;
      case "Offer":
        this.onOffer(msg).catch(failed("offer"));
        break;
      case "Answer":
        this.onAnswer(msg).catch(failed("answer"));
        break;
      case "IceCandidate":
        this.onCandidate(msg).catch(failed("candidate"));
        break;
      case "PeerLeft":
        this.onPeerLeft(msg);
        break;
    }
  }

  onAssign(msg) {
    this.role = msg.role;
    this.parentId = msg.parent_id ?? null;
    // A non-empty server list replaces the ICE config; an empty one keeps it.
    if (Array.isArray(msg.ice_servers) && msg.ice_servers.length > 0) this.iceConfig = { iceServers: msg.ice_servers };
    if (this.parentId) this.openParent(this.parentId).catch((e) => this.cfg.onError?.("parent offer", e));
  }

  async openParent(parentId) {
    const pc = new RTCPeerConnection(this.iceConfig);
    const dc = pc.createDataChannel("media", { ordered: true });
    dc.binaryType = "arraybuffer";
    dc.onmessage = (ev) => {
      const bytes = new Uint8Array(ev.data);
      this.cfg.onFrame?.(bytes, parentId);
      this.forwardToChildren(bytes);
    };
    pc.onicecandidate = (ev) => {
      if (ev.candidate) this.send({ type: "IceCandidate", from: this.cfg.peerId, to: parentId, candidate: ev.candidate.candidate });
    };
    const conn = { pc, dc, peerId: parentId };
    this.parentConn = conn;
    this.allParentConns.push(conn);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.send({ type: "Offer", from: this.cfg.peerId, to: parentId, sdp: offer.sdp });
  }

  async onOffer(msg) {
    const from = msg.from;
    const pc = new RTCPeerConnection(this.iceConfig);
    pc.ondatachannel = (ev) => {
      const dc = ev.channel;
      dc.binaryType = "arraybuffer";
      // As in LVQR: the channel goes to whatever entry holds this id when it
      // arrives, which is a later connection's if the child offered again.
      const entry = this.children.get(from);
      if (entry) entry.dc = dc;
      const opened = () => {
        try {
          this.cfg.onChildOpen?.(from);
        } catch {
          // A hook's failure must not disturb the links.
        }
      };
      if (dc.readyState === "open") opened();
      else dc.addEventListener("open", opened);
    };
    pc.onicecandidate = (ev) => {
      if (ev.candidate) this.send({ type: "IceCandidate", from: this.cfg.peerId, to: from, candidate: ev.candidate.candidate });
    };
    const conn = { pc, dc: null, peerId: from };
    this.children.set(from, conn);
    this.allChildConns.push(conn);
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this.send({ type: "Answer", from: this.cfg.peerId, to: from, sdp: answer.sdp });
  }

  async onAnswer(msg) {
    if (this.parentConn && this.parentConn.peerId === msg.from) {
      await this.parentConn.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
    }
  }

  async onCandidate(msg) {
    const conn = this.parentConn?.peerId === msg.from ? this.parentConn : this.children.get(msg.from);
    // LVQR ignores sdp_mid and sdp_mline_index: one m-line, always "0".
    if (conn) await conn.pc.addIceCandidate({ candidate: msg.candidate, sdpMid: "0", sdpMLineIndex: 0 });
  }

  onPeerLeft(msg) {
    const child = this.children.get(msg.peer_id);
    if (child) {
      child.pc.close();
      this.children.delete(msg.peer_id);
    }
  }

  forwardToChildren(bytes) {
    for (const c of this.children.values()) {
      if (c.dc && c.dc.readyState === "open") {
        try {
          c.dc.send(bytes);
          this.forwarded += 1;
        } catch {
          // Closing channel, or a message over its maxMessageSize: LVQR drops it.
        }
      }
    }
  }

  send(msg) {
    if (this.signal?.readyState === WebSocket.OPEN) this.signal.send(JSON.stringify(msg));
  }

  startReports() {
    this.stopReports();
    this.reportTimer = setInterval(() => {
      if (this.forwarded === this.reported) return;
      this.send({ type: "ForwardReport", forwarded_frames: this.forwarded });
      this.reported = this.forwarded;
    }, 1000);
  }

  stopReports() {
    if (this.reportTimer !== null) {
      clearInterval(this.reportTimer);
      this.reportTimer = null;
    }
  }
}
