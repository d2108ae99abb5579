// fast-check arbitraries for protobuf messages, built from the schema by reflection: every field of every
// kind with values from all over its range (unknown enum numbers, extreme integers, any Unicode text, deep
// JSON in Structs), so property tests can throw well-typed but careless requests at every RPC.
import {
  create,
  type DescField,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
  ScalarType,
} from '@bufbuild/protobuf';
import fc from 'fast-check';

const INT32 = { min: -(2 ** 31), max: 2 ** 31 - 1 };
const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };

function scalar(type: ScalarType): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return fc.oneof(
        fc.string({ unit: 'grapheme', maxLength: 40 }),
        fc.string({ unit: 'binary', maxLength: 300 }),
      );
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 64 });
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.integer(INT32);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.integer({ min: 0, max: 2 ** 32 - 1 });
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.oneof(fc.bigInt(INT64), fc.constantFrom(INT64.min, INT64.max, -1n, 0n));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constant(2n ** 64n - 1n));
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE:
      return fc.double();
  }
}

/** A Struct's JSON, sometimes nested far deeper than anything sensible. */
const structJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 4 }), { maxKeys: 5 }),
  fc.integer({ min: 30, max: 120 }).map((depth) => {
    let value: unknown = { leaf: 'x' };
    for (let i = 0; i < depth; i++) value = { a: value };
    return value;
  }),
);

function messageValue(desc: DescMessage, depth: number): fc.Arbitrary<unknown> {
  switch (desc.typeName) {
    case 'google.protobuf.Struct':
      return structJson;
    case 'google.protobuf.Value':
      return fc.jsonValue({ maxDepth: 3 });
    case 'google.protobuf.Timestamp':
      return fc.record({
        seconds: fc.oneof(fc.bigInt(INT64), fc.bigInt({ min: 0n, max: 4_102_444_800n })),
        nanos: fc.integer(INT32),
      });
    default:
      return depth <= 0 ? fc.constant(undefined) : arbitraryInit(desc, depth - 1);
  }
}

function single(field: DescField, depth: number): fc.Arbitrary<unknown> {
  switch (field.fieldKind) {
    case 'scalar':
      return scalar(field.scalar);
    case 'enum': {
      const numbers = field.enum.values.map((v) => v.number);
      return fc.oneof(fc.constantFrom(...numbers), fc.integer({ min: -3, max: Math.max(...numbers) + 3 }));
    }
    case 'message':
      return messageValue(field.message, depth);
    case 'list': {
      const element =
        field.listKind === 'scalar'
          ? scalar(field.scalar)
          : field.listKind === 'enum'
            ? fc.integer({ min: -3, max: 20 })
            : messageValue(field.message, depth);
      return fc.array(element, { maxLength: 4 });
    }
    case 'map': {
      const value =
        field.mapKind === 'scalar'
          ? scalar(field.scalar)
          : field.mapKind === 'enum'
            ? fc.integer({ min: -3, max: 20 })
            : messageValue(field.message, depth);
      return fc.dictionary(fc.string({ maxLength: 8 }), value, { maxKeys: 3 });
    }
  }
}

/** A message init with any subset of the fields set (a oneof gets one case or none). */
function arbitraryInit(desc: DescMessage, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const plain: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of desc.fields) {
    if (!field.oneof) plain[field.localName] = single(field, depth);
  }
  const oneofs: Record<string, fc.Arbitrary<unknown>> = {};
  for (const oneof of desc.oneofs) {
    oneofs[oneof.localName] = fc.oneof(
      fc.constant(undefined),
      ...oneof.fields.map((f) => single(f, depth).map((value) => ({ case: f.localName, value }))),
    );
  }
  return fc
    .tuple(fc.record(plain, { requiredKeys: [] }), fc.record(oneofs, { requiredKeys: [] }))
    .map(([a, b]) => ({ ...a, ...b }));
}

/** Any well-typed message of `desc`. */
export function arbitraryMessage<Desc extends DescMessage>(desc: Desc): fc.Arbitrary<MessageShape<Desc>> {
  // The init is built field by field from the schema itself, so it has the message's shape.
  return arbitraryInit(desc, 3).map((init) => create(desc, init as MessageInitShape<Desc>));
}
