"""A Python client of Herald, as a user would write one: stubs generated from proto/ with
clients/templates/buf.gen.python.yaml (protoc and grpcio's plugin), grpcio on the wire.

It sends a notification, opens StreamNotifications (which replays it), sends a second one while the stream
is open and reads it live, then prints what it saw as one JSON object. Every call has a deadline.

    buf generate --template clients/templates/buf.gen.python.yaml --output /tmp/herald-py
    HERALD_API_KEY=hk_... python3 test/clients/python/send_and_stream.py \
        --stubs /tmp/herald-py --target 127.0.0.1:8080 --user py-user
"""

import argparse
import json
import os
import sys
import uuid

DEADLINE_S = 15


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stubs", required=True, help="directory holding the generated herald/v1 modules")
    parser.add_argument("--target", required=True, help="host:port of a plaintext (h2c) Herald")
    parser.add_argument("--user", required=True)
    args = parser.parse_args()
    api_key = os.environ["HERALD_API_KEY"]

    sys.path.insert(0, args.stubs)
    import grpc
    from google.protobuf import struct_pb2
    from herald.v1 import notification_service_pb2 as api
    from herald.v1 import notification_service_pb2_grpc as api_grpc
    from herald.v1 import types_pb2 as types

    metadata = (("authorization", f"Bearer {api_key}"),)

    def send(stub, title):
        data = struct_pb2.Struct()
        data.update({"source": "python", "title": title})
        return stub.Send(
            api.SendRequest(
                user_id=args.user,
                type="python.checked",
                title=title,
                data=data,
                channels=[types.CHANNEL_IN_APP],
                idempotency_key=str(uuid.uuid4()),
            ),
            metadata=metadata,
            timeout=DEADLINE_S,
        )

    with grpc.insecure_channel(args.target) as channel:
        stub = api_grpc.NotificationServiceStub(channel)
        first = send(stub, "first")
        stream = stub.StreamNotifications(
            api.StreamNotificationsRequest(user_id=args.user, after_seq=0),
            metadata=metadata,
            timeout=DEADLINE_S,
        )
        sent = [first.notification_id]
        streamed = []
        for event in stream:
            if event.WhichOneof("event") != "notification":
                continue
            notification = event.notification
            streamed.append(
                {
                    "id": notification.id,
                    "seq": notification.seq,
                    "title": notification.title,
                    "data": dict(notification.data),
                    "createdAt": notification.created_at.ToJsonString(),
                }
            )
            if len(sent) == 1:
                # The first one came from the replay; the second arrives live on the open stream.
                sent.append(send(stub, "second").notification_id)
            if len(streamed) == 2:
                stream.cancel()
                break

    print(json.dumps({"sent": sent, "streamed": streamed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
