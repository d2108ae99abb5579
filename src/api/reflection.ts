// gRPC server reflection (grpc.reflection.v1 and its predecessor v1alpha), so that grpcurl, buf curl, Postman
// and grpcui list and call Herald's services without a copy of proto/. The answers are the descriptors
// protoc-gen-es embedded in gen/, so they describe exactly what the server decodes. Written here because no
// maintained package does it for Connect-ES v2 (connect-es issue #507 is open; @grpc/reflection and its kin
// plug into @grpc/grpc-js servers only).
import {
  create,
  createRegistry,
  type DescExtension,
  type DescFile,
  type DescService,
  toBinary,
} from '@bufbuild/protobuf';
import { nestedTypes } from '@bufbuild/protobuf/reflect';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import * as v1 from '../../gen/grpc/reflection/v1/reflection_pb.js';
import * as v1alpha from '../../gen/grpc/reflection/v1alpha/reflection_pb.js';

/** A reflection request's question: the same fields in v1 and v1alpha. */
export type ReflectionQuestion =
  | {
      case: 'fileByFilename' | 'fileContainingSymbol' | 'allExtensionNumbersOfType' | 'listServices';
      value: string;
    }
  | { case: 'fileContainingExtension'; value: { containingType: string; extensionNumber: number } }
  | { case: undefined; value?: undefined };

/** The answer to one question: the response oneof, the same in v1 and v1alpha. */
export type ReflectionAnswer =
  | { case: 'fileDescriptorResponse'; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: 'allExtensionNumbersResponse'; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: 'listServicesResponse'; value: { service: { name: string }[] } }
  | { case: 'errorResponse'; value: { errorCode: number; errorMessage: string } };

export interface Reflector {
  /**
   * Answers one question of a stream. `sent` holds the files this stream has already received; a file's
   * dependencies that are in it are left out (the protocol allows that), the file asked for never is.
   */
  answer(question: ReflectionQuestion, sent: Set<string>): ReflectionAnswer;
}

/** A reflector describing `services` and every file they depend on. */
export function createReflector(services: readonly DescService[]): Reflector {
  const files = new Map<string, DescFile>();
  const addFile = (file: DescFile): void => {
    if (files.has(fileName(file))) return;
    files.set(fileName(file), file);
    file.dependencies.forEach(addFile);
  };
  for (const service of services) addFile(service.file);
  const registry = createRegistry(...files.values());
  const encoded = new Map(
    [...files].map(([name, file]) => [name, toBinary(FileDescriptorProtoSchema, file.proto)]),
  );
  const extensions = [...files.values()].flatMap((file) =>
    [...nestedTypes(file)].filter((desc): desc is DescExtension => desc.kind === 'extension'),
  );

  function fileOfSymbol(name: string): DescFile | undefined {
    const desc = registry.get(name);
    if (desc) return desc.file;
    // A method or a field: a member of a registered service or message.
    const dot = name.lastIndexOf('.');
    const parent = registry.get(name.slice(0, Math.max(dot, 0)));
    const member = name.slice(dot + 1);
    if (parent?.kind === 'service' && parent.methods.some((m) => m.name === member)) return parent.file;
    if (parent?.kind === 'message' && [...parent.fields, ...parent.oneofs].some((f) => f.name === member)) {
      return parent.file;
    }
    return undefined;
  }

  /** The file, then its transitive dependencies this stream has not received yet. */
  function withDependencies(file: DescFile, sent: Set<string>): ReflectionAnswer {
    const out: Uint8Array[] = [];
    const queue = [file];
    const seen = new Set<string>();
    for (let next = queue.shift(); next; next = queue.shift()) {
      const name = fileName(next);
      if (seen.has(name)) continue;
      seen.add(name);
      if (next === file || !sent.has(name)) out.push(encoded.get(name)!);
      sent.add(name);
      queue.push(...next.dependencies);
    }
    return { case: 'fileDescriptorResponse', value: { fileDescriptorProto: out } };
  }

  return {
    answer(question, sent) {
      switch (question.case) {
        case 'listServices':
          return {
            case: 'listServicesResponse',
            value: { service: services.map((s) => ({ name: s.typeName })) },
          };
        case 'fileByFilename': {
          const file = files.get(question.value);
          return file ? withDependencies(file, sent) : notFound(`file "${question.value}"`);
        }
        case 'fileContainingSymbol': {
          const file = fileOfSymbol(question.value);
          return file ? withDependencies(file, sent) : notFound(`symbol "${question.value}"`);
        }
        case 'fileContainingExtension': {
          const { containingType, extensionNumber } = question.value;
          const extension = extensions.find(
            (e) => e.extendee.typeName === containingType && e.number === extensionNumber,
          );
          return extension
            ? withDependencies(extension.file, sent)
            : notFound(`extension ${extensionNumber} of "${containingType}"`);
        }
        case 'allExtensionNumbersOfType': {
          if (!registry.getMessage(question.value)) return notFound(`message type "${question.value}"`);
          return {
            case: 'allExtensionNumbersResponse',
            value: {
              baseTypeName: question.value,
              extensionNumber: extensions
                .filter((e) => e.extendee.typeName === question.value)
                .map((e) => e.number),
            },
          };
        }
        case undefined:
          throw new ConnectError('the request sets none of message_request', Code.InvalidArgument);
      }
    },
  };
}

/** Serves grpc.reflection.v1 and v1alpha, describing `services` and themselves. */
export function registerReflection(router: ConnectRouter, services: readonly DescService[]): void {
  const reflector = createReflector([...services, v1.ServerReflection, v1alpha.ServerReflection]);
  router.service(v1.ServerReflection, {
    serverReflectionInfo: answerEach(reflector, (request: v1.ServerReflectionRequest, answer) =>
      create(v1.ServerReflectionResponseSchema, {
        validHost: request.host,
        originalRequest: request,
        messageResponse: answer,
      }),
    ),
  });
  router.service(v1alpha.ServerReflection, {
    serverReflectionInfo: answerEach(reflector, (request: v1alpha.ServerReflectionRequest, answer) =>
      create(v1alpha.ServerReflectionResponseSchema, {
        validHost: request.host,
        originalRequest: request,
        messageResponse: answer,
      }),
    ),
  });
}

/**
 * Questions one stream may ask. Tools ask a few dozen (list, then a file per service and its dependencies);
 * the cap keeps one unauthenticated stream from keeping a core busy answering.
 */
export const MAX_QUESTIONS_PER_STREAM = 1_000;

/** The bidi handler: one response per request, in order, with one `sent` set per stream. */
function answerEach<Req extends { messageRequest: ReflectionQuestion }, Res>(
  reflector: Reflector,
  respond: (request: Req, answer: ReflectionAnswer) => Res,
): (requests: AsyncIterable<Req>) => AsyncGenerator<Res> {
  return async function* (requests) {
    const sent = new Set<string>();
    let asked = 0;
    for await (const request of requests) {
      if (++asked > MAX_QUESTIONS_PER_STREAM) {
        throw new ConnectError(
          `a reflection stream answers at most ${MAX_QUESTIONS_PER_STREAM} requests; open another`,
          Code.ResourceExhausted,
        );
      }
      yield respond(request, reflector.answer(request.messageRequest, sent));
    }
  };
}

function notFound(what: string): ReflectionAnswer {
  return { case: 'errorResponse', value: { errorCode: Code.NotFound, errorMessage: `${what} not found` } };
}

function fileName(file: DescFile): string {
  return `${file.name}.proto`;
}
