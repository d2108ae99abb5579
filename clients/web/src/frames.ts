// The frames of Herald's live inbox, one per StreamNotificationsResponse event: what the server's WebSocket bridge
// sends and what the browser client emits on both of its transports. `type` is the event's proto field name and
// the payload sits under the same key, in protobuf JSON (int64 as strings, enums by name, timestamps RFC 3339):
//
//   {"type":"unread_count","unread_count":{"count":"3"}}   from   {"unreadCount":{"count":"3"}}
//
// The server imports this module, so the two sides cannot drift apart.
import { type DescMessage, type MessageJsonType, type MessageShape, toJson } from '@bufbuild/protobuf';
import type {
  HeartbeatJson,
  StateChangeJson,
  StreamNotificationsResponseJson,
  SystemMessageJson,
  UnreadCountJson,
} from './gen/herald/v1/notification_service_pb.js';
import type { NotificationJson } from './gen/herald/v1/types_pb.js';

export type StreamFrame =
  | { type: 'notification'; notification: NotificationJson }
  | { type: 'state'; state: StateChangeJson }
  | { type: 'unread_count'; unread_count: UnreadCountJson }
  | { type: 'heartbeat'; heartbeat: HeartbeatJson }
  | { type: 'system'; system: SystemMessageJson };

/** The frame of one StreamNotificationsResponse, given as protobuf JSON. A response with no event (none is
 * sent) reads as an empty heartbeat. */
export function frameOf(json: StreamNotificationsResponseJson): StreamFrame {
  if (json.notification) return { type: 'notification', notification: json.notification };
  if (json.state) return { type: 'state', state: json.state };
  if (json.unreadCount) return { type: 'unread_count', unread_count: json.unreadCount };
  if (json.system) return { type: 'system', system: json.system };
  return { type: 'heartbeat', heartbeat: json.heartbeat ?? {} };
}

/** A message's protobuf JSON with zero values written too (`{"count":"0"}`, `"body":""`), as frames carry them. */
export function eventJson<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
): MessageJsonType<Desc> {
  // Writing zero values adds only keys the JSON type declares (all optional); protobuf-es types the output of
  // every non-default option as JsonValue, so the JSON type is restored here, in one place.
  return toJson(schema, message, { alwaysEmitImplicit: true }) as MessageJsonType<Desc>;
}
