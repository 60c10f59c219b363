export { MeshPeer } from "./peer.js";
export type { Assignment, MeshPeerConfig, MeshPeerStats, ObjectSource } from "./peer.js";
export {
  CHUNK_FLAG,
  CHUNK_HEADER_BYTES,
  ChunkAssembler,
  DEFAULT_MAX_OBJECT_BYTES,
  FramingError,
  MAX_CHUNK_BYTES,
  MAX_DATACHANNEL_MESSAGE,
  MAX_UNCHUNKED_PAYLOAD,
  OBJECT_HEADER_BYTES,
  decodeObject,
  encodeObject,
  frameForDataChannel,
  parseDataChannelMessage,
} from "./framing.js";
export type { AssemblyEvent, DataChannelMessage, DecodedObject } from "./framing.js";
export { Sequencer } from "./sequencer.js";
export type { Delivery, Gap, OfferResult, SequencerOptions } from "./sequencer.js";
export { Backoff } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export {
  deriveOriginUrl,
  egressUrl,
  isValidPeerId,
  isValidTrack,
  loopbackOnly,
  parseServerMessage,
} from "./signal.js";
export type { AssignParentMessage, ClientMessage, Role, ServerMessage } from "./signal.js";
