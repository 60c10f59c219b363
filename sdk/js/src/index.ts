// The SDK's public API: a viewer in the mesh, what configures and reports
// it, and the few helpers an integrator needs around it. Everything else
// (the core, framing, reorder buffer, backoff) is internal and may change.
export { MeshPeer } from "./peer.js";
export type { Assignment, MeshPeerConfig, MeshPeerStats, ObjectSource } from "./peer.js";
export type { Role } from "./signal.js";
export { isValidPeerId, isValidTrack, loopbackOnly } from "./signal.js";
/** The origin egress framing `[u64 BE object_id][payload]`, for an integrator feeding a root with `pushFrame`. */
export { decodeObject, encodeObject, DATACHANNEL_PROTOCOL } from "./framing.js";
export type { DecodedObject } from "./framing.js";
