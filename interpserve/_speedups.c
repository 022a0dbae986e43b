/* Compiled versions of the few pure functions every request goes through, on both sides of a
 * worker's pipes: the wire codec's request and response-start frames and its frame loop
 * (wire.py), the parser's fast path and its run over a chunked body's chunks
 * (frontend/http_grammar.py), the response head (frontend/response.py), a worker's check of an
 * app's response headers (worker/asgi.py), HTTP/2's frame splitting (frontend/http2_frames.py),
 * and the load generator's read of a whole response (bench/http1.py). One more is here for
 * memory, not speed: glibc's malloc_trim and mallopt (memory.py), which Python could only reach
 * through ctypes.
 * Each does exactly what the Python it replaces does, which stays the reference (and the
 * fallback where this module is not built): tests/test_speedups.py holds the two to the same
 * output and the same errors on generated input.
 *
 * Why: in a plaintext request the first four were a third of the main interpreter's time, and
 * as large a share of a worker's (docs/performance.md, "Figures behind the code"). Why in C and
 * not mypyc:
 * a module that runs in subinterpreters must use multi-phase initialisation and keep no global
 * state, which mypyc's modules do not; this one keeps everything in its module state (one per
 * interpreter).
 *
 * The Python modules hand over the classes and tables it needs once, at import
 * (setup_wire, setup_parser, setup_response): it imports nothing of ours itself. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* Frame types and request flags: wire.py's constants (setup_wire checks they agree). */
enum { REQUEST = 1, RESPONSE_START = 9, RESPONSE_START_END = 20, RESPONSE_START_FINISHED = 21 };
enum { MORE_BODY = 1, EXPECT_CONTINUE = 2, HAS_CLIENT = 4, HAS_SERVER = 8, WEBSOCKET = 16 };
#define HEADER_SIZE 9
#define FIELDS_SIZE 6       /* u16 count, u32 size */
#define REQUEST_FIXED_SIZE 5 /* u8 flags, u16 client port, u16 server port */
#define MAX_FIELDS 0xFFFF

/* An app answers most requests with the same few response starts: response_block keeps its
 * last BLOCK_CACHE answers, each under what it was computed from (a status, whether the method
 * was HEAD, and `key`: the date, the default headers object, then every field's name and
 * value, all bytes), and gives the same answer again without encoding anything. */
#define BLOCK_CACHE 8

typedef struct {
    long long status;
    int head;
    PyObject *key;    /* tuple: (date, defaults, name, value, name, value, ...); NULL: unused */
    PyObject *result; /* (block, framing, content length) */
} BlockEntry;

typedef struct {
    /* setup_wire */
    PyObject *Request, *ResponseStart, *WireError, *struct_error;
    PyObject *encoders; /* dict: event type -> Python encoder, for the other events */
    PyObject *decoders; /* dict: frame type -> Python decoder, for the other frames */
    Py_ssize_t max_payload;
    /* Where each field of a Request, a ResponseStart and the parsers' RequestHead is in an
     * instance (see slot_offsets; 0: read and made the attribute way) */
    Py_ssize_t request_offsets[12], start_offsets[6], head_offsets[9], h2_head_offsets[9];
    /* setup_response */
    PyObject *ResponsePlan, *framing_none, *framing_length, *framing_chunked, *framing_close;
    PyObject *status_lines; /* dict: status -> its status line */
    PyObject *default_headers;
    /* setup_parser */
    PyObject *RequestHead, *methods, *forwarding_fields, *s_11, *s_10;
    /* setup_hpack: hpack's static table (a tuple of (name, value)) and Huffman code */
    PyObject *static_table;
    uint32_t huffman_codes[257];
    uint8_t huffman_lengths[257];
    /* setup_http2 */
    PyObject *h2_RequestHead, *h2_forwarding, *h2_none, *h2_length, *h2_stream, *s_2,
        *s_host_field, *s_cookie_field;
    /* response_block's last answers (see BLOCK_CACHE) */
    BlockEntry blocks[BLOCK_CACHE];
    int next_block;
    /* attribute names, interned */
    PyObject *s_request_id, *s_method, *s_scheme, *s_http_version, *s_raw_path, *s_query_string,
        *s_headers, *s_client, *s_server, *s_more_body, *s_expect_continue, *s_websocket,
        *s_status, *s_body, *s_finished, *s_extra, *s_request_line, *s_fields, *s_field_size;
} State;

static State *get_state(PyObject *module) { return (State *)PyModule_GetState(module); }

/* ------------------------------------------------------------------------------------------ */
/* Byte helpers */

static void put_u16(char *p, unsigned long v) {
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
}

static void put_u32(char *p, unsigned long v) {
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static unsigned get_u16(const unsigned char *p) { return ((unsigned)p[0] << 8) | p[1]; }

static uint32_t get_u32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* An int as struct packs it: 0 <= v <= max, or struct.error as struct raises it. */
static int as_unsigned(State *st, PyObject *obj, unsigned long max, unsigned long *out) {
    if (!PyLong_Check(obj)) {
        PyErr_SetString(st->struct_error, "required argument is not an integer");
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow || v < 0 || (unsigned long long)v > max) {
        PyErr_SetString(st->struct_error, "argument out of range");
        return -1;
    }
    *out = (unsigned long)v;
    return 0;
}

/* A field's bytes: a bytes or bytearray object's own, anything else with the buffer protocol
 * through a bytes copy kept in `keep` (which the caller releases), as b"".join would take it. */
typedef struct {
    const char *data;
    Py_ssize_t size;
} Span;

static int bytes_span(PyObject *obj, Span *span, PyObject *keep) {
    if (PyBytes_Check(obj)) {
        span->data = PyBytes_AS_STRING(obj);
        span->size = PyBytes_GET_SIZE(obj);
        return 0;
    }
    if (PyByteArray_Check(obj)) {
        span->data = PyByteArray_AS_STRING(obj);
        span->size = PyByteArray_GET_SIZE(obj);
        return 0;
    }
    if (PyUnicode_Check(obj) || !PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError, "expected a bytes-like object, %.80s found",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyObject *copy = PyBytes_FromObject(obj);
    if (copy == NULL) return -1;
    int failed = PyList_Append(keep, copy);
    Py_DECREF(copy);
    if (failed) return -1;
    span->data = PyBytes_AS_STRING(copy);
    span->size = PyBytes_GET_SIZE(copy);
    return 0;
}

/* A str's UTF-8 (what str.encode() gives); `ascii` refuses anything else, as .encode("ascii"). */
static int text_span(PyObject *obj, Span *span, int ascii) {
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "expected str, %.80s found", Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (ascii && !PyUnicode_IS_ASCII(obj)) {
        PyObject *encoded = PyUnicode_AsASCIIString(obj); /* raises UnicodeEncodeError */
        Py_XDECREF(encoded);
        return -1;
    }
    span->data = PyUnicode_AsUTF8AndSize(obj, &span->size);
    return span->data == NULL ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Encoding: a list of fields (see wire._pack_fields) */

/* A growable buffer, on the stack until it outgrows it: a response head's bytes, or the Spans
 * of a list of fields. */
typedef struct {
    char *data;
    Py_ssize_t size, capacity;
    _Alignas(max_align_t) char inline_data[1024];
} Buffer;

static void buffer_init(Buffer *b) {
    b->data = b->inline_data;
    b->size = 0;
    b->capacity = sizeof(b->inline_data);
}

static void buffer_free(Buffer *b) {
    if (b->data != b->inline_data) PyMem_Free(b->data);
}

/* `size` more bytes at the end, to be written at the address returned (valid until the next
 * call); NULL with MemoryError. */
static char *buffer_reserve(Buffer *b, Py_ssize_t size) {
    if (b->size + size > b->capacity) {
        Py_ssize_t capacity = (b->size + size) * 2;
        char *grown = PyMem_Malloc(capacity);
        if (grown == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        memcpy(grown, b->data, b->size);
        buffer_free(b);
        b->data = grown;
        b->capacity = capacity;
    }
    b->size += size;
    return b->data + b->size - size;
}

static int buffer_add(Buffer *b, const char *data, Py_ssize_t size) {
    char *to = buffer_reserve(b, size);
    if (to == NULL) return -1;
    memcpy(to, data, size);
    return 0;
}

/* A list of fields is a Buffer of Spans. */
typedef Buffer Fields;

static Span *fields_add(Fields *f) { return (Span *)buffer_reserve(f, sizeof(Span)); }

static Py_ssize_t fields_count(Fields *f) { return f->size / (Py_ssize_t)sizeof(Span); }

static Span *fields_items(Fields *f) { return (Span *)f->data; }

/* Every (name, value) pair of `headers` as two fields. */
static int add_headers(Fields *f, PyObject *headers, PyObject *keep) {
    PyObject *seq = PySequence_Fast(headers, "headers must be a sequence of pairs");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **pairs = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = pairs[i];
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_ValueError, "a header is not a (name, value) pair");
            goto fail;
        }
        for (int j = 0; j < 2; j++) {
            Span *span = fields_add(f);
            if (span == NULL || bytes_span(PyTuple_GET_ITEM(pair, j), span, keep)) goto fail;
        }
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

/* The size of the packed list, or -1 with ValueError as wire._pack_fields raises it. */
static Py_ssize_t fields_size(Fields *f) {
    Py_ssize_t count = fields_count(f);
    Span *items = fields_items(f);
    if (count > MAX_FIELDS) {
        PyErr_Format(PyExc_ValueError, "%zd fields do not fit in a frame", count);
        return -1;
    }
    Py_ssize_t size = FIELDS_SIZE + (count ? count - 1 : 0);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (memchr(items[i].data, 0, items[i].size) != NULL) {
            PyErr_SetString(PyExc_ValueError, "a field holds a NUL byte");
            return -1;
        }
        size += items[i].size;
    }
    if (size - FIELDS_SIZE > 0xFFFFFFFFL) {
        PyErr_SetString(PyExc_ValueError, "the fields do not fit in a frame");
        return -1;
    }
    return size;
}

static char *fields_write(Fields *f, char *p) {
    Py_ssize_t count = fields_count(f), block = 0;
    Span *items = fields_items(f);
    for (Py_ssize_t i = 0; i < count; i++) block += items[i].size + (i ? 1 : 0);
    put_u16(p, (unsigned long)count);
    put_u32(p + 2, (unsigned long)block);
    p += FIELDS_SIZE;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (i) *p++ = '\0';
        memcpy(p, items[i].data, items[i].size);
        p += items[i].size;
    }
    return p;
}

/* (header, payload) of a frame whose payload is `payload`. */
static PyObject *frame(State *st, int kind, PyObject *request_id, PyObject *payload) {
    unsigned long id;
    if (as_unsigned(st, request_id, 0xFFFFFFFFUL, &id)) {
        Py_DECREF(payload);
        return NULL;
    }
    PyObject *header = PyBytes_FromStringAndSize(NULL, HEADER_SIZE);
    if (header == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    char *h = PyBytes_AS_STRING(header);
    h[0] = (char)kind;
    put_u32(h + 1, id);
    put_u32(h + 5, (unsigned long)PyBytes_GET_SIZE(payload));
    PyObject *result = PyTuple_Pack(2, header, payload);
    Py_DECREF(header);
    Py_DECREF(payload);
    return result;
}

/* Events (events.py) and request heads (http_events.py) are slotted classes whose __init__ sets
 * the fields of their __match_args__, in that order, and does nothing else: a field is a slot,
 * at the offset its member descriptor gives, which is what reading or setting the attribute
 * does. The offset of each of the `n` fields in an instance of `type`; all 0 (read and made the
 * attribute way) unless every one is such a slot. */
static int slot_offsets(PyObject *type, Py_ssize_t *offsets, int n) {
    memset(offsets, 0, sizeof(Py_ssize_t) * (size_t)n);
    PyObject *names = PyObject_GetAttrString(type, "__match_args__");
    if (names == NULL) return -1;
    int ok = PyTuple_Check(names) && PyTuple_GET_SIZE(names) == n;
    for (int i = 0; ok && i < n; i++) {
        PyObject *descr = PyObject_GetAttr(type, PyTuple_GET_ITEM(names, i));
        if (descr == NULL) {
            Py_DECREF(names);
            return -1;
        }
        ok = Py_IS_TYPE(descr, &PyMemberDescr_Type);
        if (ok) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            ok = member->type == Py_T_OBJECT_EX && !(member->flags & Py_READONLY);
            offsets[i] = member->offset;
        }
        Py_DECREF(descr);
    }
    Py_DECREF(names);
    if (!ok) memset(offsets, 0, sizeof(Py_ssize_t) * (size_t)n);
    return 0;
}

/* An instance of exactly the type whose `offsets` they are, made from `fields` (new
 * references, taken over) as its __init__ would: without a Python call. */
static PyObject *new_event(PyObject *type, const Py_ssize_t *offsets, PyObject **fields, int n) {
    PyObject *event = NULL;
    int direct = 1;
    for (int i = 0; i < n; i++) direct = direct && offsets[i];
    if (direct) {
        event = ((PyTypeObject *)type)->tp_alloc((PyTypeObject *)type, 0);
        if (event != NULL) {
            for (int i = 0; i < n; i++) *(PyObject **)((char *)event + offsets[i]) = fields[i];
            return event;
        }
    } else {
        event = PyObject_Vectorcall(type, fields, n, NULL);
    }
    for (int i = 0; i < n; i++) Py_DECREF(fields[i]);
    return event;
}

/* Attributes read off an event (through their slots' `offsets` where given: the event is of
 * exactly the type they are of); NULL (with the error set) if one is missing. */
static int get_attrs(PyObject *obj, PyObject **names, const Py_ssize_t *offsets, PyObject **out,
                     int n) {
    for (int i = 0; i < n; i++) {
        PyObject *value = offsets && offsets[i] ? *(PyObject **)((char *)obj + offsets[i]) : NULL;
        out[i] = value != NULL ? Py_NewRef(value) : PyObject_GetAttr(obj, names[i]);
        if (out[i] == NULL) {
            for (int j = 0; j < i; j++) Py_DECREF(out[j]);
            return -1;
        }
    }
    return 0;
}

static void drop_attrs(PyObject **objs, int n) {
    for (int i = 0; i < n; i++) Py_DECREF(objs[i]);
}

/* An address, (host, port) or None: its host's field and its port. */
static int address(State *st, PyObject *addr, Fields *f, unsigned long *port, int *present) {
    Span *span = fields_add(f);
    if (span == NULL) return -1;
    *present = PyObject_IsTrue(addr);
    if (*present < 0) return -1;
    if (!*present) {
        span->data = "";
        span->size = 0;
        *port = 0;
        return 0;
    }
    if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) != 2) {
        PyErr_SetString(PyExc_ValueError, "an address is not a (host, port) pair");
        return -1;
    }
    if (text_span(PyTuple_GET_ITEM(addr, 0), span, 0)) return -1;
    return as_unsigned(st, PyTuple_GET_ITEM(addr, 1), 0xFFFF, port);
}

enum { R_ID, R_METHOD, R_SCHEME, R_VERSION, R_PATH, R_QUERY, R_HEADERS, R_CLIENT, R_SERVER,
       R_MORE, R_EXPECT, R_WEBSOCKET, R_COUNT };

/* wire._encode_request */
static PyObject *encode_request(State *st, PyObject *request) {
    PyObject *names[R_COUNT] = {st->s_request_id, st->s_method, st->s_scheme,
                                st->s_http_version, st->s_raw_path, st->s_query_string,
                                st->s_headers, st->s_client, st->s_server, st->s_more_body,
                                st->s_expect_continue, st->s_websocket};
    PyObject *a[R_COUNT];
    if (get_attrs(request, names, st->request_offsets, a, R_COUNT)) return NULL;
    PyObject *result = NULL, *payload = NULL;
    PyObject *keep = PyList_New(0);
    Fields f;
    buffer_init(&f);
    if (keep == NULL) goto done;
    int flags = 0, present;
    const int flag_of[3] = {MORE_BODY, EXPECT_CONTINUE, WEBSOCKET};
    const int attr_of[3] = {R_MORE, R_EXPECT, R_WEBSOCKET};
    for (int i = 0; i < 3; i++) {
        int truth = PyObject_IsTrue(a[attr_of[i]]);
        if (truth < 0) goto done;
        if (truth) flags |= flag_of[i];
    }
    unsigned long client_port, server_port;
    for (int i = R_METHOD; i <= R_VERSION; i++) {
        Span *span = fields_add(&f);
        if (span == NULL || text_span(a[i], span, 1)) goto done;
    }
    for (int i = R_PATH; i <= R_QUERY; i++) {
        Span *span = fields_add(&f);
        if (span == NULL || bytes_span(a[i], span, keep)) goto done;
    }
    if (address(st, a[R_CLIENT], &f, &client_port, &present)) goto done;
    if (present) flags |= HAS_CLIENT;
    if (address(st, a[R_SERVER], &f, &server_port, &present)) goto done;
    if (present) flags |= HAS_SERVER;
    if (add_headers(&f, a[R_HEADERS], keep)) goto done;
    Py_ssize_t size = fields_size(&f);
    if (size < 0) goto done;
    payload = PyBytes_FromStringAndSize(NULL, REQUEST_FIXED_SIZE + size);
    if (payload == NULL) goto done;
    char *p = PyBytes_AS_STRING(payload);
    p[0] = (char)flags;
    put_u16(p + 1, client_port);
    put_u16(p + 3, server_port);
    fields_write(&f, p + REQUEST_FIXED_SIZE);
    result = frame(st, REQUEST, a[R_ID], payload);
done:
    buffer_free(&f);
    Py_XDECREF(keep);
    drop_attrs(a, R_COUNT);
    return result;
}

enum { S_ID, S_STATUS, S_HEADERS, S_BODY, S_MORE, S_FINISHED, S_COUNT };

/* wire._encode_response_start */
static PyObject *encode_response_start(State *st, PyObject *start) {
    PyObject *names[S_COUNT] = {st->s_request_id, st->s_status, st->s_headers,
                                st->s_body, st->s_more_body, st->s_finished};
    PyObject *a[S_COUNT];
    if (get_attrs(start, names, st->start_offsets, a, S_COUNT)) return NULL;
    PyObject *result = NULL, *payload = NULL;
    PyObject *keep = PyList_New(0);
    Fields f;
    buffer_init(&f);
    if (keep == NULL) goto done;
    unsigned long status;
    if (as_unsigned(st, a[S_STATUS], 0xFFFF, &status)) goto done;
    if (add_headers(&f, a[S_HEADERS], keep)) goto done;
    Py_ssize_t size = fields_size(&f);
    if (size < 0) goto done;
    Span body;
    if (bytes_span(a[S_BODY], &body, keep)) goto done;
    int more = PyObject_IsTrue(a[S_MORE]);
    int finished = PyObject_IsTrue(a[S_FINISHED]);
    if (more < 0 || finished < 0) goto done;
    payload = PyBytes_FromStringAndSize(NULL, 2 + size + body.size);
    if (payload == NULL) goto done;
    char *p = PyBytes_AS_STRING(payload);
    put_u16(p, status);
    p = fields_write(&f, p + 2);
    memcpy(p, body.data, body.size);
    int kind = more ? RESPONSE_START : finished ? RESPONSE_START_FINISHED : RESPONSE_START_END;
    result = frame(st, kind, a[S_ID], payload);
done:
    buffer_free(&f);
    Py_XDECREF(keep);
    drop_attrs(a, S_COUNT);
    return result;
}

static int wire_ready(State *st) {
    if (st->Request == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup_wire() has not been called");
        return 0;
    }
    return 1;
}

/* wire.encode_parts: one event as its frame's header and payload. */
static PyObject *encode_parts(PyObject *module, PyObject *event) {
    State *st = get_state(module);
    if (!wire_ready(st)) return NULL;
    PyObject *type = (PyObject *)Py_TYPE(event);
    if (type == st->Request) return encode_request(st, event);
    if (type == st->ResponseStart) return encode_response_start(st, event);
    PyObject *encoder = PyDict_GetItemWithError(st->encoders, type); /* borrowed */
    if (encoder == NULL) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "not a stream event: %R", event);
        return NULL;
    }
    return PyObject_CallOneArg(encoder, event);
}

/* ------------------------------------------------------------------------------------------ */
/* Decoding */

static PyObject *wire_error(State *st, const char *message) {
    PyErr_SetString(st->WireError, message);
    return NULL;
}

/* wire._unpack_fields: the list at `offset`; sets its count, where its block starts and ends. */
static int unpack_fields(State *st, const unsigned char *p, Py_ssize_t size, Py_ssize_t offset,
                         Py_ssize_t *count, Py_ssize_t *start, Py_ssize_t *end) {
    if (size < offset + FIELDS_SIZE) {
        wire_error(st, "truncated field list");
        return -1;
    }
    *count = get_u16(p + offset);
    *start = offset + FIELDS_SIZE;
    *end = *start + (Py_ssize_t)get_u32(p + offset + 2);
    if (*end > size) {
        wire_error(st, "field list exceeds the payload");
        return -1;
    }
    Py_ssize_t found = 0;
    if (*count) {
        found = 1;
        const unsigned char *q = p + *start, *stop = p + *end;
        while ((q = memchr(q, 0, stop - q)) != NULL) {
            found++;
            q++;
        }
    }
    if (found != *count || (!*count && *end > *start)) {
        wire_error(st, "field count does not match the fields");
        return -1;
    }
    return 0;
}

/* Reads the fields of a block in turn. */
typedef struct {
    const unsigned char *at, *end;
} FieldReader;

static Span next_field(FieldReader *r) {
    const unsigned char *nul = memchr(r->at, 0, r->end - r->at);
    Span span = {(const char *)r->at, (nul ? nul : r->end) - r->at};
    r->at = nul ? nul + 1 : r->end;
    return span;
}

static PyObject *field_bytes(FieldReader *r) {
    Span s = next_field(r);
    return PyBytes_FromStringAndSize(s.data, s.size);
}

/* wire._unpack_headers: `pairs` pairs of fields. */
static PyObject *read_headers(FieldReader *r, Py_ssize_t pairs) {
    PyObject *headers = PyTuple_New(pairs);
    if (headers == NULL) return NULL;
    for (Py_ssize_t i = 0; i < pairs; i++) {
        PyObject *name = field_bytes(r);
        PyObject *value = name ? field_bytes(r) : NULL;
        PyObject *pair = value ? PyTuple_Pack(2, name, value) : NULL;
        Py_XDECREF(name);
        Py_XDECREF(value);
        if (pair == NULL) {
            Py_DECREF(headers);
            return NULL;
        }
        PyTuple_SET_ITEM(headers, i, pair);
    }
    return headers;
}

static PyObject *read_address(FieldReader *r, int present, unsigned port) {
    Span host = next_field(r);
    if (!present) Py_RETURN_NONE;
    PyObject *text = PyUnicode_DecodeUTF8(host.data, host.size, NULL);
    if (text == NULL) return NULL;
    PyObject *result = Py_BuildValue("(NI)", text, port);
    return result;
}

/* wire._decode_request */
static PyObject *decode_request(State *st, PyObject *request_id, const unsigned char *p,
                                Py_ssize_t size) {
    if (size < REQUEST_FIXED_SIZE) return wire_error(st, "truncated request");
    int flags = p[0];
    Py_ssize_t count, start, end;
    if (unpack_fields(st, p, size, REQUEST_FIXED_SIZE, &count, &start, &end)) return NULL;
    if (end != size) return wire_error(st, "field list does not end the payload");
    if (count < 7) return wire_error(st, "request frame lacks fields");
    if ((count - 7) % 2) return wire_error(st, "odd number of header fields");
    FieldReader r = {p + start, p + end};
    PyObject *args[12] = {NULL};
    args[0] = Py_NewRef(request_id);
    for (int i = 1; i <= 3; i++) { /* method, scheme, version */
        Span s = next_field(&r);
        if ((args[i] = PyUnicode_DecodeASCII(s.data, s.size, NULL)) == NULL) goto fail;
    }
    for (int i = 4; i <= 5; i++) { /* raw path, query */
        if ((args[i] = field_bytes(&r)) == NULL) goto fail;
    }
    /* The hosts come before the headers in the fields, after them in the arguments. */
    args[7] = read_address(&r, flags & HAS_CLIENT, get_u16(p + 1));
    if (args[7] == NULL) goto fail;
    args[8] = read_address(&r, flags & HAS_SERVER, get_u16(p + 3));
    if (args[8] == NULL) goto fail;
    if ((args[6] = read_headers(&r, (count - 7) / 2)) == NULL) goto fail;
    args[9] = Py_NewRef(flags & MORE_BODY ? Py_True : Py_False);
    args[10] = Py_NewRef(flags & EXPECT_CONTINUE ? Py_True : Py_False);
    args[11] = Py_NewRef(flags & WEBSOCKET ? Py_True : Py_False);
    return new_event(st->Request, st->request_offsets, args, 12);
fail:
    for (int i = 0; i < 12; i++) Py_XDECREF(args[i]);
    return NULL;
}

/* wire._response_start_decoder's decoders */
static PyObject *decode_response_start(State *st, PyObject *request_id, const unsigned char *p,
                                       Py_ssize_t size, int more_body, int finished) {
    if (size < 2) return wire_error(st, "truncated response start");
    Py_ssize_t count, start, end;
    if (unpack_fields(st, p, size, 2, &count, &start, &end)) return NULL;
    if (count % 2) return wire_error(st, "odd number of header fields");
    FieldReader r = {p + start, p + end};
    PyObject *args[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    args[1] = PyLong_FromLong(get_u16(p));
    args[2] = args[1] ? read_headers(&r, count / 2) : NULL;
    args[3] = args[2] ? PyBytes_FromStringAndSize((const char *)p + end, size - end) : NULL;
    if (args[3] == NULL) {
        Py_XDECREF(args[1]);
        Py_XDECREF(args[2]);
        return NULL;
    }
    args[0] = Py_NewRef(request_id);
    args[4] = Py_NewRef(more_body ? Py_True : Py_False);
    args[5] = Py_NewRef(finished ? Py_True : Py_False);
    return new_event(st->ResponseStart, st->start_offsets, args, 6);
}

/* wire._decode: one frame's event; a ValueError (or struct.error) in decoding it is a
 * WireError naming the frame's type. */
static PyObject *decode_frame(State *st, int kind, uint32_t id, const unsigned char *p,
                              Py_ssize_t size) {
    PyObject *request_id = PyLong_FromUnsignedLong(id);
    if (request_id == NULL) return NULL;
    PyObject *event = NULL;
    switch (kind) {
    case REQUEST:
        event = decode_request(st, request_id, p, size);
        break;
    case RESPONSE_START:
        event = decode_response_start(st, request_id, p, size, 1, 0);
        break;
    case RESPONSE_START_END:
        event = decode_response_start(st, request_id, p, size, 0, 0);
        break;
    case RESPONSE_START_FINISHED:
        event = decode_response_start(st, request_id, p, size, 0, 1);
        break;
    default: {
        PyObject *key = PyLong_FromLong(kind);
        PyObject *decoder = key ? PyDict_GetItemWithError(st->decoders, key) : NULL;
        Py_XDECREF(key);
        if (decoder == NULL) {
            if (!PyErr_Occurred()) PyErr_Format(st->WireError, "unknown frame type %d", kind);
            break;
        }
        PyObject *payload = PyBytes_FromStringAndSize((const char *)p, size);
        if (payload == NULL) break;
        PyObject *args[2] = {request_id, payload};
        event = PyObject_Vectorcall(decoder, args, 2, NULL);
        Py_DECREF(payload);
    }
    }
    Py_DECREF(request_id);
    if (event == NULL && (PyErr_ExceptionMatches(PyExc_ValueError) ||
                          PyErr_ExceptionMatches(st->struct_error))) {
        PyObject *exc = PyErr_GetRaisedException();
        PyErr_Format(st->WireError, "malformed frame of type %d: %S", kind, exc);
        Py_DECREF(exc);
    }
    return event;
}

/* wire._decode_whole_frames(data, offset, out): the events of the whole frames in `data` from
 * `offset` appended to `out`; returns where the first incomplete frame starts (or the end). */
static PyObject *decode_whole_frames(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    State *st = get_state(module);
    if (!wire_ready(st)) return NULL;
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "expected (bytes, offset, list)");
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]);
    if (offset == -1 && PyErr_Occurred()) return NULL;
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t end = PyBytes_GET_SIZE(args[0]);
    if (offset < 0 || offset > end) {
        PyErr_SetString(PyExc_ValueError, "offset out of range");
        return NULL;
    }
    while (end - offset >= HEADER_SIZE) {
        const unsigned char *h = data + offset;
        uint32_t length = get_u32(h + 5);
        if ((Py_ssize_t)length > st->max_payload) {
            PyErr_Format(st->WireError, "frame payload of %lu bytes is too large",
                         (unsigned long)length);
            return NULL;
        }
        Py_ssize_t start = offset + HEADER_SIZE;
        if (start + (Py_ssize_t)length > end) break;
        PyObject *event = decode_frame(st, h[0], get_u32(h + 1), data + start, length);
        if (event == NULL) return NULL;
        int failed = PyList_Append(args[2], event);
        Py_DECREF(event);
        if (failed) return NULL;
        offset = start + length;
    }
    return PyLong_FromSsize_t(offset);
}

/* ------------------------------------------------------------------------------------------ */
/* The response head: frontend/response.py's plan_response */

static int buffer_add_line(Buffer *b, Span name, Span value) {
    return buffer_add(b, name.data, name.size) || buffer_add(b, ": ", 2) ||
           buffer_add(b, value.data, value.size) || buffer_add(b, "\r\n", 2);
}

static int equals(Span s, const char *text) {
    size_t n = strlen(text);
    return (size_t)s.size == n && memcmp(s.data, text, n) == 0;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' || c == '\x0c';
}

/* int(value) if value.strip().isdigit(), else NULL without an error. */
static PyObject *content_length_of(Span value) {
    Py_ssize_t start = 0, stop = value.size;
    while (start < stop && is_space(value.data[start])) start++;
    while (stop > start && is_space(value.data[stop - 1])) stop--;
    if (start == stop) return NULL;
    for (Py_ssize_t i = start; i < stop; i++) {
        if (value.data[i] < '0' || value.data[i] > '9') return NULL;
    }
    if (stop - start <= 18) {
        long long n = 0;
        for (Py_ssize_t i = start; i < stop; i++) n = n * 10 + (value.data[i] - '0');
        return PyLong_FromLongLong(n);
    }
    /* Longer: as int() takes it, with its limit on digits. */
    PyObject *digits = PyUnicode_DecodeASCII(value.data + start, stop - start, NULL);
    if (digits == NULL) return NULL;
    PyObject *n = PyLong_FromUnicodeObject(digits, 10);
    Py_DECREF(digits);
    return n;
}

/* A response's Content-Length, for HTTP/1.1 and HTTP/2 alike: only the first valid one, where a
 * body is allowed, is kept (into *content_length); a second, invalid or forbidden one is dropped.
 * 1: kept, 0: dropped, -1: an error is set. */
static int take_content_length(Span value, int no_body_allowed, PyObject **content_length) {
    if (*content_length != NULL || no_body_allowed) return 0;
    *content_length = content_length_of(value);
    if (*content_length != NULL) return 1;
    return PyErr_Occurred() ? -1 : 0;
}

/* b"close" in value.lower() */
static int says_close(Span value) {
    for (Py_ssize_t i = 0; i + 5 <= value.size; i++) {
        if (PyOS_strnicmp(value.data + i, "close", 5) == 0) return 1;
    }
    return 0;
}

static int setup_response_ready(State *st) {
    if (st->ResponsePlan == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup_response() has not been called");
        return 0;
    }
    return 1;
}

static const char *const PLAN_ARGS[] = {"status", "headers", "method", "http_version",
                                        "keep_alive", "date", "defaults"};
#define PLAN_NARGS 7

/* The arguments by position or keyword, as a Python function with these parameters takes
 * them; all are required but the last, `defaults`. */
static int bind(State *st, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                PyObject **out) {
    if (nargs > PLAN_NARGS) {
        PyErr_SetString(PyExc_TypeError, "plan_response() takes 7 arguments");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PLAN_NARGS; i++) out[i] = i < nargs ? args[i] : NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int i = 0;
        while (i < PLAN_NARGS && PyUnicode_CompareWithASCIIString(key, PLAN_ARGS[i]) != 0) i++;
        if (i == PLAN_NARGS || out[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "plan_response() got an unexpected argument %R", key);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    if (out[PLAN_NARGS - 1] == NULL) out[PLAN_NARGS - 1] = st->default_headers;
    for (int i = 0; i < PLAN_NARGS; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "plan_response() missing argument '%s'", PLAN_ARGS[i]);
            return -1;
        }
    }
    return 0;
}

static PyObject *status_line(State *st, PyObject *status) {
    PyObject *line = PyDict_GetItemWithError(st->status_lines, status);
    if (line != NULL) return Py_NewRef(line);
    if (PyErr_Occurred()) return NULL;
    PyObject *text = PyUnicode_FromFormat("HTTP/1.1 %S \r\n", status);
    if (text == NULL) return NULL;
    line = PyUnicode_AsUTF8String(text);
    Py_DECREF(text);
    return line;
}

static PyObject *plan_response(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    State *st = get_state(module);
    PyObject *a[PLAN_NARGS];
    if (!setup_response_ready(st) || bind(st, args, nargs, kwnames, a)) return NULL;
    PyObject *status = a[0], *headers = a[1], *method = a[2], *http_version = a[3];
    PyObject *date = a[5], *defaults = a[6];
    if (!PyLong_Check(status)) {
        PyErr_SetString(PyExc_TypeError, "status must be an int");
        return NULL;
    }
    int keep_alive = PyObject_IsTrue(a[4]);
    if (keep_alive < 0) return NULL;
    int overflow;
    long code = PyLong_AsLongAndOverflow(status, &overflow);
    if (code == -1 && PyErr_Occurred()) return NULL;
    if (overflow) code = overflow < 0 ? LONG_MIN : LONG_MAX;
    int no_body_allowed = code < 200 || code == 204;

    PyObject *result = NULL, *content_length = NULL, *line = NULL, *server = NULL, *extra = NULL;
    PyObject *seq = NULL, *keep = PyList_New(0);
    Buffer b;
    buffer_init(&b);
    if (keep == NULL || (line = status_line(st, status)) == NULL) goto done;
    if (!PyBytes_Check(line)) {
        PyErr_SetString(PyExc_TypeError, "a status line must be bytes");
        goto done;
    }
    if (buffer_add(&b, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line))) goto done;
    int has_server = 0, has_date = 0;
    seq = PySequence_Fast(headers, "headers must be a sequence of pairs");
    if (seq == NULL) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **pairs = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = pairs[i];
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_ValueError, "a header is not a (name, value) pair");
            goto done;
        }
        Span name, value;
        if (bytes_span(PyTuple_GET_ITEM(pair, 0), &name, keep) ||
            bytes_span(PyTuple_GET_ITEM(pair, 1), &value, keep))
            goto done;
        if (equals(name, "content-length")) {
            int kept = take_content_length(value, no_body_allowed, &content_length);
            if (kept < 0) goto done;
            if (!kept) continue;
        } else if (equals(name, "transfer-encoding")) {
            continue; /* framing is ours to decide */
        } else if (equals(name, "connection")) {
            if (says_close(value)) keep_alive = 0;
            continue;
        } else if (equals(name, "server")) {
            has_server = 1;
        } else if (equals(name, "date")) {
            has_date = 1; /* the app's own: a second one would contradict it */
        }
        if (buffer_add_line(&b, name, value)) goto done;
    }
    server = PyObject_GetAttr(defaults, st->s_server);
    extra = server ? PyObject_GetAttr(defaults, st->s_extra) : NULL;
    if (extra == NULL) goto done;
    Span span;
    if (!has_server) {
        if (bytes_span(server, &span, keep) || buffer_add(&b, span.data, span.size)) goto done;
    }
    if (bytes_span(extra, &span, keep) || buffer_add(&b, span.data, span.size)) goto done;
    if (bytes_span(date, &span, keep)) goto done;
    if (span.size && !has_date) {
        if (buffer_add(&b, "date: ", 6) || buffer_add(&b, span.data, span.size) ||
            buffer_add(&b, "\r\n", 2))
            goto done;
    }

    int http_11 = PyUnicode_Check(http_version) &&
                  PyUnicode_CompareWithASCIIString(http_version, "1.1") == 0;
    int http_10 = PyUnicode_Check(http_version) &&
                  PyUnicode_CompareWithASCIIString(http_version, "1.0") == 0;
    int head = PyUnicode_Check(method) && PyUnicode_CompareWithASCIIString(method, "HEAD") == 0;
    PyObject *framing;
    if (head || code < 200 || code == 204 || code == 304) {
        framing = st->framing_none;
    } else if (content_length != NULL) {
        framing = st->framing_length;
    } else if (http_11) {
        framing = st->framing_chunked;
        if (buffer_add(&b, "transfer-encoding: chunked\r\n", 28)) goto done;
    } else {
        framing = st->framing_close;
        keep_alive = 0;
    }
    if (!keep_alive) {
        if (buffer_add(&b, "connection: close\r\n", 19)) goto done;
    } else if (http_10) {
        if (buffer_add(&b, "connection: keep-alive\r\n", 24)) goto done;
    }
    if (buffer_add(&b, "\r\n", 2)) goto done;
    if (content_length == NULL && (content_length = PyLong_FromLong(-1)) == NULL) goto done;
    PyObject *plan_args[4] = {PyBytes_FromStringAndSize(b.data, b.size), framing, content_length,
                              keep_alive ? Py_True : Py_False};
    if (plan_args[0] == NULL) goto done;
    result = PyObject_Vectorcall(st->ResponsePlan, plan_args, 4, NULL);
    Py_DECREF(plan_args[0]);
done:
    buffer_free(&b);
    Py_XDECREF(seq);
    Py_XDECREF(keep);
    Py_XDECREF(line);
    Py_XDECREF(server);
    Py_XDECREF(extra);
    Py_XDECREF(content_length);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* The parser's fast path: frontend/http_grammar.py's parse_plain_request */

static int is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The target's characters in the plain grammar (RFC 3986's that mean the same to both
 * backends). */
static int is_plain_target_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-._~!$&'()*+,;=:@/?%", c) != NULL);
}

static int is_plain_value_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c <= 0x7e); }

static int lower_equals(const char *data, Py_ssize_t size, const char *text) {
    return (size_t)size == strlen(text) && PyOS_strnicmp(data, text, size) == 0;
}

static const char *find_crlf(const char *at, const char *end) {
    while (at + 1 < end) {
        const char *cr = memchr(at, '\r', end - at - 1);
        if (cr == NULL) return NULL;
        if (cr[1] == '\n') return cr;
        at = cr + 1;
    }
    return NULL;
}

/* Reads a limit off the Limits object: an int, or -1 for None. */
static int read_limit(PyObject *limits, PyObject *name, Py_ssize_t *out) {
    PyObject *value = PyObject_GetAttr(limits, name);
    if (value == NULL) return -1;
    *out = value == Py_None ? -1 : PyLong_AsSsize_t(value);
    Py_DECREF(value);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* What make_head decides from the fields, for a head it accepts (0); 1 for one it refuses
 * (the Python path then names the fault). */
typedef struct {
    int hosts, lengths, keep_alive, expect_continue, forwarded, close, keep_alive_token;
    long long content_length;
} Decisions;

static void connection_tokens(Decisions *d, const char *v, Py_ssize_t size) {
    const char *end = v + size;
    while (v <= end) {
        const char *comma = memchr(v, ',', end - v);
        const char *stop = comma ? comma : end;
        const char *a = v, *b = stop;
        while (a < b && is_space(*a)) a++;
        while (b > a && is_space(b[-1])) b--;
        if (lower_equals(a, b - a, "close")) d->close = 1;
        if (lower_equals(a, b - a, "keep-alive")) d->keep_alive_token = 1;
        if (comma == NULL) break;
        v = comma + 1;
    }
}

static PyObject *parse_plain_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    State *st = get_state(module);
    if (st->RequestHead == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup_parser() has not been called");
        return NULL;
    }
    if (nargs != 4 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "expected (bytes, pos, limits, max_section)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    Py_ssize_t max_section = PyLong_AsSsize_t(args[3]);
    Py_ssize_t request_line, max_fields, field_size, body_limit;
    if ((pos == -1 || max_section == -1) && PyErr_Occurred()) return NULL;
    if (read_limit(args[2], st->s_request_line, &request_line) ||
        read_limit(args[2], st->s_fields, &max_fields) ||
        read_limit(args[2], st->s_field_size, &field_size) ||
        read_limit(args[2], st->s_body, &body_limit))
        return NULL;
    const char *data = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (pos < 0 || pos > size) Py_RETURN_NONE;

    /* _complete_head */
    while (pos + 2 <= size && data[pos] == '\r' && data[pos + 1] == '\n') pos += 2;
    const char *head = data + pos, *found = NULL;
    for (const char *at = head; (at = find_crlf(at, data + size)) != NULL; at += 2) {
        if (at + 4 <= data + size && at[2] == '\r' && at[3] == '\n') {
            found = at;
            break;
        }
    }
    if (found == NULL) Py_RETURN_NONE;
    const char *head_end = found + 4;
    Py_ssize_t head_size = head_end - head, body = head_end - data;
    const char *line_end = find_crlf(head, head_end);
    Py_ssize_t line_size = line_end - head;
    const char *space = memchr(head, ' ', head_size);
    Py_ssize_t newlines = 0, longest = 0;
    for (const char *at = head; (at = memchr(at, '\n', head_end - at)) != NULL; at++) newlines++;
    for (const char *at = head, *crlf; head_size > field_size && at < head_end; at = crlf + 2) {
        crlf = find_crlf(at, head_end); /* (the lines as head.split(b"\r\n") cuts them) */
        if (crlf == NULL) break;
        if (crlf - at > longest) longest = crlf - at;
    }
    if (line_size > request_line || line_size < 3 ||
        (memcmp(line_end - 3, "1.1", 3) != 0 && memcmp(line_end - 3, "1.0", 3) != 0) ||
        newlines - 2 > max_fields || head_size - 2 > max_section ||
        (head_size > field_size && longest > field_size))
        Py_RETURN_NONE;
    PyObject *method_bytes =
        PyBytes_FromStringAndSize(head, space ? space - head : head_size - 1);
    if (method_bytes == NULL) return NULL;
    int known = PySet_Contains(st->methods, method_bytes);
    Py_DECREF(method_bytes);
    if (known <= 0) return known < 0 ? NULL : Py_NewRef(Py_None);

    /* The request line: ([A-Z][A-Z\-]*) ([target chars]+) HTTP/1\.([01])\r\n */
    const char *p = head;
    if (!(*p >= 'A' && *p <= 'Z')) Py_RETURN_NONE;
    while (p < line_end && ((*p >= 'A' && *p <= 'Z') || *p == '-')) p++;
    Py_ssize_t method_size = p - head;
    if (p == line_end || *p != ' ') Py_RETURN_NONE;
    const char *target = ++p;
    while (p < line_end && is_plain_target_char(*p)) p++;
    Py_ssize_t target_size = p - target;
    if (target_size == 0 || line_end - p != 9 || memcmp(p, " HTTP/1.", 8) != 0 ||
        (p[8] != '0' && p[8] != '1'))
        Py_RETURN_NONE;
    int http_11 = p[8] == '1';
    if (*target != '/') Py_RETURN_NONE; /* absolute or asterisk form: the full path's */
    if (method_size == 7 && memcmp(head, "CONNECT", 7) == 0) Py_RETURN_NONE;

    /* The field lines, and make_head's decisions on them. http_rules.make_head is the
     * reference: each check here is one of its rules, for the fields a plain request may
     * have; a field whose rules are not repeated here (Transfer-Encoding, Upgrade) sends the
     * request to the backends, which apply make_head itself. */
    Decisions d = {0};
    PyObject *headers = PyList_New(0), *result = NULL;
    if (headers == NULL) return NULL;
    for (const char *line = line_end + 2; line < found + 2;) {
        const char *crlf = find_crlf(line, head_end);
        const char *colon = line;
        while (colon < crlf && is_tchar(*colon)) colon++;
        if (colon == line || colon == crlf || *colon != ':') goto refuse;
        const char *value = colon + 1, *c;
        while (value < crlf && (*value == ' ' || *value == '\t')) value++;
        for (c = value; c < crlf; c++) {
            if (!is_plain_value_char(*c)) goto refuse;
        }
        if (crlf[-1] == ' ' || crlf[-1] == '\t') goto refuse;
        Py_ssize_t name_size = colon - line, value_size = crlf - value;
        if (lower_equals(line, name_size, "transfer-encoding") ||
            lower_equals(line, name_size, "upgrade"))
            goto refuse;
        PyObject *name = PyBytes_FromStringAndSize(NULL, name_size);
        if (name == NULL) goto done;
        char *lower = PyBytes_AS_STRING(name);
        for (Py_ssize_t i = 0; i < name_size; i++) lower[i] = Py_TOLOWER(line[i]);
        PyObject *val = PyBytes_FromStringAndSize(value, value_size);
        PyObject *pair = val ? PyTuple_Pack(2, name, val) : NULL;
        Py_DECREF(name);
        Py_XDECREF(val);
        if (pair == NULL) goto done;
        int failed = PyList_Append(headers, pair);
        Py_DECREF(pair);
        if (failed) goto done;
        if (lower_equals(line, name_size, "host")) {
            d.hosts++;
        } else if (lower_equals(line, name_size, "content-length")) {
            if (++d.lengths > 1 || value_size == 0 || value_size > 18) goto refuse;
            d.content_length = 0;
            for (c = value; c < crlf; c++) {
                if (*c < '0' || *c > '9') goto refuse;
                d.content_length = d.content_length * 10 + (*c - '0');
            }
        } else if (lower_equals(line, name_size, "connection")) {
            connection_tokens(&d, value, value_size);
        } else if (lower_equals(line, name_size, "expect")) {
            if (lower_equals(value, value_size, "100-continue")) d.expect_continue = 1;
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(st->forwarding_fields); i++) {
            PyObject *field = PyTuple_GET_ITEM(st->forwarding_fields, i);
            if (lower_equals(line, name_size, PyBytes_AS_STRING(field))) d.forwarded = 1;
        }
        line = crlf + 2;
    }
    Py_ssize_t count = PyList_GET_SIZE(headers);
    if (count > max_fields || d.hosts > 1 || (d.hosts == 0 && http_11)) goto refuse;
    if (body_limit >= 0 && d.content_length > body_limit) goto refuse;
    int keep_alive = http_11 ? !d.close : d.keep_alive_token && !d.close;
    int has_body = d.content_length > 0;
    Py_ssize_t end = body + (Py_ssize_t)d.content_length;
    if (end > size || (!keep_alive && end != size)) goto refuse;

    /* http_rules.RequestHead's fields, in their declared order (tests/test_speedups.py pins
     * it): make_head builds it positionally too. */
    PyObject *head_args[9] = {
        PyUnicode_DecodeASCII(head, method_size, NULL),
        PyBytes_FromStringAndSize(target, target_size),
        http_11 ? st->s_11 : st->s_10,
        headers,
        keep_alive ? Py_True : Py_False,
        http_11 && has_body && d.expect_continue ? Py_True : Py_False,
        has_body ? Py_True : Py_False,
        Py_False, /* upgrade: the plain grammar has no Upgrade field */
        d.forwarded ? Py_True : Py_False,
    };
    if (head_args[0] != NULL && head_args[1] != NULL) {
        for (int i = 2; i < 9; i++) Py_INCREF(head_args[i]);
        PyObject *request = new_event(st->RequestHead, st->head_offsets, head_args, 9);
        if (request != NULL) result = Py_BuildValue("(Nnn)", request, body, end);
    } else {
        Py_XDECREF(head_args[0]);
        Py_XDECREF(head_args[1]);
    }
    goto done;
refuse:
    result = Py_NewRef(Py_None);
done:
    Py_DECREF(headers);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* A chunked body's run of whole chunks: frontend/http_grammar.py's skip_chunks */

static int hex_digit(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static const unsigned char *past_token(const unsigned char *p, const unsigned char *end) {
    while (p < end && is_tchar(*p)) p++;
    return p;
}

/* Past a quoted string at p (http_grammar.py's _QUOTED), or NULL if there is none whole there. */
static const unsigned char *past_quoted(const unsigned char *p, const unsigned char *end) {
    if (p >= end || *p != '"') return NULL;
    for (p++; p < end; p++) {
        unsigned char c = *p;
        if (c == '"') return p + 1;
        if (c == '\\') {
            if (++p >= end) return NULL;
            c = *p;
            if (!(c == '\t' || (c >= 0x20 && c != 0x7f))) return NULL;
        } else if (!(c == '\t' || (c >= 0x20 && c != 0x7f && c != '"' && c != '\\'))) {
            return NULL;
        }
    }
    return NULL;
}

/* A chunk size line at p (http_grammar.py's _CHUNK_LINE): 1, with its size, the size of its
 * extensions and the position after its CRLF; 0 if there is none whole and in the grammar. */
static int chunk_line(const unsigned char *p, const unsigned char *end, uint64_t *size,
                      Py_ssize_t *extensions, const unsigned char **after) {
    uint64_t value = 0;
    int digits = 0, digit;
    while (p < end && digits < 16 && (digit = hex_digit(*p)) >= 0) {
        value = value * 16 + (uint64_t)digit;
        p++;
        digits++;
    }
    if (!digits) return 0;
    const unsigned char *first = p;
    while (p < end && *p == ';') {
        const unsigned char *name = p + 1, *q = past_token(name, end);
        if (q == name) return 0;
        if (q < end && *q == '=') {
            const unsigned char *v = q + 1;
            q = past_token(v, end);
            if (q == v && (q = past_quoted(v, end)) == NULL) return 0;
        }
        p = q;
    }
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n') return 0;
    *size = value;
    *extensions = p - first;
    *after = p + 2;
    return 1;
}

static PyObject *skip_chunks(PyObject *Py_UNUSED(module), PyObject *const *args,
                             Py_ssize_t nargs) {
    if ((nargs != 6 && nargs != 7) || !PyBytes_Check(args[0]) ||
        (nargs == 7 && args[6] != Py_None && !PyByteArray_Check(args[6]))) {
        PyErr_SetString(PyExc_TypeError,
                        "expected (bytes, pos, remaining, crlf_next, extensions, max_extensions"
                        "[, bytearray or None])");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) return NULL;
    unsigned long long remaining = PyLong_AsUnsignedLongLong(args[2]);
    if (remaining == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    int crlf_next = PyObject_IsTrue(args[3]);
    if (crlf_next < 0) return NULL;
    Py_ssize_t extensions = PyLong_AsSsize_t(args[4]);
    if (extensions == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t max_extensions = PyLong_AsSsize_t(args[5]);
    if (max_extensions == -1 && PyErr_Occurred()) return NULL;
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t end = PyBytes_GET_SIZE(args[0]);
    /* The chunks' data goes to `out` when one is given: it grows by what the run can hold at
     * most (the bytes left), then shrinks to what it took. */
    PyObject *out = nargs == 7 && args[6] != Py_None ? args[6] : NULL;
    Py_ssize_t base = 0, taken = 0;
    if (out) {
        base = PyByteArray_GET_SIZE(out);
        if (PyByteArray_Resize(out, base + (pos >= 0 && pos < end ? end - pos : 0)) < 0)
            return NULL;
    }
    while (pos >= 0 && pos < end) {
        if (remaining) {
            unsigned long long available = (unsigned long long)(end - pos);
            unsigned long long take = remaining < available ? remaining : available;
            if (out) {
                char *to = PyByteArray_AS_STRING(out) + base + taken;
                if (take <= 8) { /* (a call to memcpy costs more than the few bytes) */
                    for (unsigned long long i = 0; i < take; i++) to[i] = (char)data[pos + i];
                } else {
                    memcpy(to, data + pos, (size_t)take);
                }
                taken += (Py_ssize_t)take;
            }
            pos += (Py_ssize_t)take;
            remaining -= take;
            crlf_next = 1;
            continue;
        }
        const unsigned char *p = data + pos, *stop = data + end, *after;
        if (crlf_next) {
            if (stop - p < 2 || p[0] != '\r' || p[1] != '\n') break;
            p += 2;
        }
        uint64_t size;
        Py_ssize_t more;
        if (!chunk_line(p, stop, &size, &more, &after) || !size ||
            extensions + more > max_extensions)
            break;
        pos = after - data;
        remaining = size;
        crlf_next = 0;
        extensions += more;
    }
    if (out && PyByteArray_Resize(out, base + taken) < 0) return NULL;
    return Py_BuildValue("(nKOn)", pos, remaining, crlf_next ? Py_True : Py_False, extensions);
}

/* ------------------------------------------------------------------------------------------ */
/* A worker's check of an app's response headers: worker/asgi.py's checked_headers */

/* Whether the bytes-like `obj` holds any of `forbidden`; -1 (with TypeError, as re's search
 * raises it) for what is not bytes-like. */
static int holds_any(PyObject *obj, const char *forbidden, Py_ssize_t count, PyObject *keep) {
    Span span;
    if (bytes_span(obj, &span, keep)) return -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (memchr(span.data, forbidden[i], span.size) != NULL) return 1;
    }
    return 0;
}

static PyObject *lowered(PyObject *name) {
    if (!PyBytes_CheckExact(name)) return PyObject_CallMethod(name, "lower", NULL);
    Py_ssize_t size = PyBytes_GET_SIZE(name);
    PyObject *lower = PyBytes_FromStringAndSize(NULL, size);
    if (lower == NULL) return NULL;
    const char *from = PyBytes_AS_STRING(name);
    char *to = PyBytes_AS_STRING(lower);
    for (Py_ssize_t i = 0; i < size; i++) to[i] = Py_TOLOWER(from[i]);
    return lower;
}

static PyObject *checked_headers(PyObject *Py_UNUSED(module), PyObject *raw) {
    PyObject *seq = PySequence_Fast(raw, "headers must be an iterable of pairs");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *headers = PyTuple_New(n), *keep = NULL;
    if (headers == NULL) goto fail;
    /* First every name lowered, as the Python version's comprehension does, then the checks. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast(PySequence_Fast_GET_ITEM(seq, i), "cannot unpack");
        if (pair == NULL) goto fail;
        if (PySequence_Fast_GET_SIZE(pair) != 2) {
            PyErr_Format(PyExc_ValueError, "expected 2 values to unpack, got %zd",
                         PySequence_Fast_GET_SIZE(pair));
            Py_DECREF(pair);
            goto fail;
        }
        PyObject *name = lowered(PySequence_Fast_GET_ITEM(pair, 0));
        PyObject *item = name ? PyTuple_Pack(2, name, PySequence_Fast_GET_ITEM(pair, 1)) : NULL;
        Py_XDECREF(name);
        Py_DECREF(pair);
        if (item == NULL) goto fail;
        PyTuple_SET_ITEM(headers, i, item);
    }
    keep = PyList_New(0);
    if (keep == NULL) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(PyTuple_GET_ITEM(headers, i), 0);
        PyObject *value = PyTuple_GET_ITEM(PyTuple_GET_ITEM(headers, i), 1);
        int empty = PyObject_Not(name);
        if (empty < 0) goto fail;
        int bad = empty ? 1 : holds_any(name, "\r\n\0:", 4, keep);
        if (bad == 0) bad = holds_any(value, "\r\n\0", 3, keep);
        if (bad < 0) goto fail;
        if (bad) {
            PyErr_Format(PyExc_RuntimeError, "invalid HTTP header in the response: %R: %R", name,
                         value);
            goto fail;
        }
    }
    Py_DECREF(seq);
    Py_DECREF(keep);
    return headers;
fail:
    Py_DECREF(seq);
    Py_XDECREF(keep);
    Py_XDECREF(headers);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP/2: HPACK's encoding of a header block (frontend/http2_hpack.py's encode_fields), an
 * app's response start as its header block (frontend/http2_rules.py's response_block), and
 * a request's head from its decoded fields (http2_rules.py's accepted_head). */

#define STATIC_ENTRIES 61
#define HUFFMAN_SYMBOLS 257

static int hpack_ready(State *st) {
    if (st->static_table == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup_hpack() has not been called");
        return 0;
    }
    return 1;
}

/* An HPACK integer (RFC 7541 §5.1) with `prefix_bits` bits in a first byte that has `first`'s
 * other bits: hpack's encode_integer, the flag or'ed into the first byte. */
static int put_integer(Buffer *b, unsigned first, int prefix_bits, size_t value) {
    size_t max = ((size_t)1 << prefix_bits) - 1;
    char c;
    if (value < max) {
        c = (char)(first | value);
        return buffer_add(b, &c, 1);
    }
    c = (char)(first | max);
    if (buffer_add(b, &c, 1)) return -1;
    value -= max;
    while (value >= 128) {
        c = (char)((value & 127) + 128);
        if (buffer_add(b, &c, 1)) return -1;
        value >>= 7;
    }
    c = (char)value;
    return buffer_add(b, &c, 1);
}

/* A string literal (§5.2), Huffman-coded when that is shorter (http2_hpack._string). */
static int put_string(State *st, Buffer *b, Span s) {
    const unsigned char *p = (const unsigned char *)s.data;
    size_t bits = 0;
    for (Py_ssize_t i = 0; i < s.size; i++) bits += st->huffman_lengths[p[i]];
    size_t coded = (bits + 7) / 8;
    if (coded >= (size_t)s.size) {
        return put_integer(b, 0, 7, (size_t)s.size) || buffer_add(b, s.data, s.size);
    }
    if (put_integer(b, 0x80, 7, coded)) return -1;
    char *out = buffer_reserve(b, (Py_ssize_t)coded);
    if (out == NULL) return -1;
    uint64_t acc = 0;
    int held = 0;
    for (Py_ssize_t i = 0; i < s.size; i++) {
        int length = st->huffman_lengths[p[i]];
        acc = (acc << length) | st->huffman_codes[p[i]];
        held += length;
        while (held >= 8) {
            held -= 8;
            *out++ = (char)(acc >> held);
        }
    }
    if (held) *out = (char)((acc << (8 - held)) | ((1u << (8 - held)) - 1)); /* EOS padding */
    return 0;
}

static int span_equals(Span a, PyObject *bytes) {
    return a.size == PyBytes_GET_SIZE(bytes) && memcmp(a.data, PyBytes_AS_STRING(bytes), a.size) == 0;
}

/* One field on its own (http2_hpack.encode_field): indexed from the static table, or a
 * literal without indexing, by the static table's first entry of that name if it has one. */
static int put_field(State *st, Buffer *b, Span name, Span value) {
    int name_index = 0;
    for (int i = 0; i < STATIC_ENTRIES; i++) {
        PyObject *entry = PyTuple_GET_ITEM(st->static_table, i);
        if (!span_equals(name, PyTuple_GET_ITEM(entry, 0))) continue;
        if (span_equals(value, PyTuple_GET_ITEM(entry, 1))) return put_integer(b, 0x80, 7, i + 1);
        if (!name_index) name_index = i + 1;
    }
    if (name_index) return put_integer(b, 0, 4, name_index) || put_string(st, b, value);
    return buffer_add(b, "\0", 1) || put_string(st, b, name) || put_string(st, b, value);
}

/* The bytes of a pair's name and value, as `for name, value in fields` unpacks it; TypeError
 * for what is not bytes (the Python version's dict and Huffman table refuse it too). */
static int pair_spans(PyObject *pair, Span *name, Span *value) {
    if (!PyTuple_Check(pair) && !PyList_Check(pair)) {
        PyErr_Format(PyExc_TypeError, "cannot unpack non-iterable %.80s object",
                     Py_TYPE(pair)->tp_name);
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(pair) != 2) {
        PyErr_Format(PyExc_ValueError, "expected 2 values to unpack, got %zd",
                     PySequence_Fast_GET_SIZE(pair));
        return -1;
    }
    PyObject *n = PySequence_Fast_GET_ITEM(pair, 0), *v = PySequence_Fast_GET_ITEM(pair, 1);
    if (!PyBytes_Check(n) || !PyBytes_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "a field's name and value must be bytes");
        return -1;
    }
    name->data = PyBytes_AS_STRING(n);
    name->size = PyBytes_GET_SIZE(n);
    value->data = PyBytes_AS_STRING(v);
    value->size = PyBytes_GET_SIZE(v);
    return 0;
}

static PyObject *buffer_bytes(Buffer *b) { return PyBytes_FromStringAndSize(b->data, b->size); }

static PyObject *encode_fields(PyObject *module, PyObject *fields) {
    State *st = get_state(module);
    if (!hpack_ready(st)) return NULL;
    PyObject *seq = PySequence_Fast(fields, "fields must be an iterable of pairs");
    if (seq == NULL) return NULL;
    Buffer b;
    buffer_init(&b);
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        Span name, value;
        if (pair_spans(PySequence_Fast_GET_ITEM(seq, i), &name, &value) ||
            put_field(st, &b, name, value))
            goto done;
    }
    result = buffer_bytes(&b);
done:
    buffer_free(&b);
    Py_DECREF(seq);
    return result;
}

/* The fields HTTP/1.1's hop-by-hop meaning leaves out of HTTP/2 (http2_rules.CONNECTION_SPECIFIC). */
static int connection_specific(Span name) {
    return equals(name, "connection") || equals(name, "keep-alive") ||
           equals(name, "proxy-connection") || equals(name, "transfer-encoding") ||
           equals(name, "upgrade");
}

/* The server's own header lines as fields, as DefaultHeaders.fields makes them: its `server`
 * line (if `server`) and its `extra` lines, together, split at each CRLF, each line's name
 * and value parted at its first ": ". */
static int put_default_fields(State *st, Buffer *b, PyObject *defaults, int server) {
    PyObject *names[2] = {st->s_server, st->s_extra};
    Buffer lines;
    buffer_init(&lines);
    int failed = 0;
    for (int k = server ? 0 : 1; k < 2 && !failed; k++) {
        PyObject *part = PyObject_GetAttr(defaults, names[k]);
        if (part == NULL) {
            failed = -1;
        } else if (!PyBytes_Check(part)) {
            PyErr_SetString(PyExc_TypeError, "the default header lines must be bytes");
            failed = -1;
        } else {
            failed = buffer_add(&lines, PyBytes_AS_STRING(part), PyBytes_GET_SIZE(part));
        }
        Py_XDECREF(part);
    }
    const char *p = lines.data, *end = p + lines.size;
    while (p < end && !failed) {
        const char *stop = find_crlf(p, end);
        if (stop == NULL) stop = end;
        if (stop > p) {
            const char *sep = p;
            while (sep + 1 < stop && !(sep[0] == ':' && sep[1] == ' ')) sep++;
            Span name = {p, stop - p}, value = {stop, 0};
            if (sep + 1 < stop) {
                name.size = sep - p;
                value.data = sep + 2;
                value.size = stop - sep - 2;
            }
            failed = put_field(st, b, name, value);
        }
        p = stop + 2;
    }
    buffer_free(&lines);
    return failed;
}

static int http2_ready(State *st) {
    if (st->h2_RequestHead == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup_http2() has not been called");
        return 0;
    }
    return hpack_ready(st);
}

static int same_bytes(PyObject *a, PyObject *b) {
    return a == b || (PyBytes_GET_SIZE(a) == PyBytes_GET_SIZE(b) &&
                      memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b), PyBytes_GET_SIZE(a)) == 0);
}

/* Whether `entry` was computed from these arguments (`seq`: the headers, a fast sequence). */
static int block_matches(BlockEntry *entry, long long code, int head, PyObject *seq,
                         PyObject *date, PyObject *defaults) {
    PyObject *key = entry->key;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    if (key == NULL || entry->status != code || entry->head != head ||
        PyTuple_GET_SIZE(key) != 2 + 2 * count || PyTuple_GET_ITEM(key, 1) != defaults ||
        !same_bytes(PyTuple_GET_ITEM(key, 0), date))
        return 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) return 0;
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        if (!PyBytes_CheckExact(name) || !PyBytes_CheckExact(value) ||
            !same_bytes(PyTuple_GET_ITEM(key, 2 + 2 * i), name) ||
            !same_bytes(PyTuple_GET_ITEM(key, 3 + 2 * i), value))
            return 0;
    }
    return 1;
}

/* Keeps `result` for these arguments, in place of the oldest answer kept; nothing if a field
 * is not a tuple of two bytes (such answers are not looked up either). */
static int keep_block(State *st, long long code, int head, PyObject *seq, PyObject *date,
                      PyObject *defaults, PyObject *result) {
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(pair, 0)) ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(pair, 1)))
            return 0;
    }
    if (!PyBytes_CheckExact(date)) return 0;
    PyObject *key = PyTuple_New(2 + 2 * count);
    if (key == NULL) return -1;
    PyTuple_SET_ITEM(key, 0, Py_NewRef(date));
    PyTuple_SET_ITEM(key, 1, Py_NewRef(defaults));
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        PyTuple_SET_ITEM(key, 2 + 2 * i, Py_NewRef(PyTuple_GET_ITEM(pair, 0)));
        PyTuple_SET_ITEM(key, 3 + 2 * i, Py_NewRef(PyTuple_GET_ITEM(pair, 1)));
    }
    BlockEntry *entry = &st->blocks[st->next_block];
    st->next_block = (st->next_block + 1) % BLOCK_CACHE;
    Py_XSETREF(entry->key, key);
    Py_XSETREF(entry->result, Py_NewRef(result));
    entry->status = code;
    entry->head = head;
    return 0;
}

static PyObject *response_block(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    State *st = get_state(module);
    if (!http2_ready(st)) return NULL;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "response_block() takes 5 arguments");
        return NULL;
    }
    PyObject *status = args[0], *headers = args[1], *method = args[2], *date = args[3];
    if (!PyLong_Check(status)) {
        PyErr_SetString(PyExc_TypeError, "status must be an int");
        return NULL;
    }
    if (!PyBytes_Check(date)) {
        PyErr_SetString(PyExc_TypeError, "date must be bytes");
        return NULL;
    }
    int overflow;
    long long code = PyLong_AsLongLongAndOverflow(status, &overflow);
    if (code == -1 && PyErr_Occurred()) return NULL;
    if (overflow) code = overflow < 0 ? LLONG_MIN : LLONG_MAX;
    int no_body_allowed = code < 200 || code == 204;

    int head = PyUnicode_Check(method) && PyUnicode_CompareWithASCIIString(method, "HEAD") == 0;

    PyObject *result = NULL, *content_length = NULL, *text = NULL;
    PyObject *seq = PySequence_Fast(headers, "headers must be an iterable of pairs");
    if (seq == NULL) return NULL;
    if (!overflow) {
        for (int i = 0; i < BLOCK_CACHE; i++) {
            if (block_matches(&st->blocks[i], code, head, seq, date, args[4])) {
                Py_DECREF(seq);
                return Py_NewRef(st->blocks[i].result);
            }
        }
    }
    Buffer b;
    buffer_init(&b);
    char digits[24];
    Span status_text = {digits, 0};
    if (!overflow) {
        status_text.size = snprintf(digits, sizeof(digits), "%lld", code);
    } else {
        PyObject *exact = PyNumber_Long(status); /* (as b"%d" takes an int subclass) */
        text = exact ? PyObject_Str(exact) : NULL;
        Py_XDECREF(exact);
        if (text == NULL || text_span(text, &status_text, 1)) goto done;
    }
    Span status_name = {":status", 7};
    if (put_field(st, &b, status_name, status_text)) goto done;
    int has_server = 0, has_date = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        Span name, value;
        if (pair_spans(PySequence_Fast_GET_ITEM(seq, i), &name, &value)) goto done;
        if (connection_specific(name)) continue;
        if (equals(name, "content-length")) {
            int kept = take_content_length(value, no_body_allowed, &content_length);
            if (kept < 0) goto done;
            if (!kept) continue;
        } else if (equals(name, "server")) {
            has_server = 1;
        } else if (equals(name, "date")) {
            has_date = 1;
        }
        if (put_field(st, &b, name, value)) goto done;
    }
    if (put_default_fields(st, &b, args[4], !has_server)) goto done;
    if (PyBytes_GET_SIZE(date) && !has_date) {
        Span name = {"date", 4}, value = {PyBytes_AS_STRING(date), PyBytes_GET_SIZE(date)};
        if (put_field(st, &b, name, value)) goto done;
    }
    PyObject *framing = head || no_body_allowed || code == 304 ? st->h2_none
                        : content_length != NULL           ? st->h2_length
                                                           : st->h2_stream;
    if (content_length == NULL && (content_length = PyLong_FromLong(-1)) == NULL) goto done;
    PyObject *block = buffer_bytes(&b);
    if (block != NULL) result = PyTuple_Pack(3, block, framing, content_length);
    Py_XDECREF(block);
    if (result != NULL && !overflow && keep_block(st, code, head, seq, date, args[4], result)) {
        Py_CLEAR(result);
    }
done:
    buffer_free(&b);
    Py_DECREF(seq);
    Py_XDECREF(text);
    Py_XDECREF(content_length);
    return result;
}

/* A regular field's name and value as RFC 9113 §8.2.1 and §8.2.2 allow them in a request
 * (http2_rules._check_field): a lowercase token; no NUL, CR or LF, nor whitespace at either
 * end; not HTTP/1.1's connection-specific, and `te` only as "trailers". */
static int valid_request_field(Span name, Span value) {
    if (name.size == 0) return 0;
    for (Py_ssize_t i = 0; i < name.size; i++) {
        unsigned char c = (unsigned char)name.data[i];
        if (!is_tchar(c) || (c >= 'A' && c <= 'Z')) return 0;
    }
    if (value.size) {
        if (memchr(value.data, '\0', value.size) || memchr(value.data, '\r', value.size) ||
            memchr(value.data, '\n', value.size))
            return 0;
        char first = value.data[0], last = value.data[value.size - 1];
        if (first == ' ' || first == '\t' || last == ' ' || last == '\t') return 0;
    }
    if (connection_specific(name)) return 0;
    return !equals(name, "te") || lower_equals(value.data, value.size, "trailers");
}

/* A content-length's value as request_head takes it (digits, at most 18), or -1. */
static long long request_length(Span value) {
    if (value.size == 0 || value.size > 18) return -1;
    long long n = 0;
    for (Py_ssize_t i = 0; i < value.size; i++) {
        if (value.data[i] < '0' || value.data[i] > '9') return -1;
        n = n * 10 + (value.data[i] - '0');
    }
    return n;
}

enum { PSEUDO_METHOD, PSEUDO_SCHEME, PSEUDO_PATH, PSEUDO_AUTHORITY, PSEUDO_COUNT };
static const char *const PSEUDO_NAMES[PSEUDO_COUNT] = {":method", ":scheme", ":path",
                                                       ":authority"};

static PyObject *accepted_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    State *st = get_state(module);
    if (!http2_ready(st)) return NULL;
    if (nargs != 3 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "expected (list of fields, end_stream, limits)");
        return NULL;
    }
    PyObject *fields = args[0];
    int end_stream = PyObject_IsTrue(args[1]);
    if (end_stream < 0) return NULL;
    Py_ssize_t request_line, max_fields, field_size, body_limit;
    if (read_limit(args[2], st->s_request_line, &request_line) ||
        read_limit(args[2], st->s_fields, &max_fields) ||
        read_limit(args[2], st->s_field_size, &field_size) ||
        read_limit(args[2], st->s_body, &body_limit))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(fields);
    PyObject *pseudo[PSEUDO_COUNT] = {NULL};
    Py_ssize_t regular = 0, cookies = 0, hosts = 0, cookie_size = 0;
    long long length = -1;
    int expect_continue = 0, forwarded = 0;
    PyObject *host = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Span name, value;
        PyObject *pair = PyList_GET_ITEM(fields, i);
        if (pair_spans(pair, &name, &value)) return NULL;
        if (name.size && name.data[0] == ':') {
            if (regular || cookies) Py_RETURN_NONE; /* a pseudo-header after a regular one */
            int k = 0;
            while (k < PSEUDO_COUNT && !equals(name, PSEUDO_NAMES[k])) k++;
            if (k == PSEUDO_COUNT || pseudo[k] != NULL) Py_RETURN_NONE;
            pseudo[k] = PySequence_Fast_GET_ITEM(pair, 1);
            continue;
        }
        if (!valid_request_field(name, value)) Py_RETURN_NONE;
        /* Limits.check_field, counting the fields before it but the cookies */
        if (regular + 1 > max_fields || name.size + value.size > field_size) Py_RETURN_NONE;
        if (equals(name, "cookie")) {
            cookies++;
            cookie_size += value.size;
            continue;
        }
        regular++;
        if (equals(name, "host")) {
            hosts++;
            host = PySequence_Fast_GET_ITEM(pair, 1);
        } else if (equals(name, "content-length")) {
            long long this = request_length(value);
            if (this < 0 || (length >= 0 && this != length)) Py_RETURN_NONE;
            if (body_limit >= 0 && this > body_limit) Py_RETURN_NONE;
            length = this;
        } else if (equals(name, "expect")) {
            if (lower_equals(value.data, value.size, "100-continue")) expect_continue = 1;
        }
        for (Py_ssize_t f = 0; f < PyTuple_GET_SIZE(st->h2_forwarding); f++) {
            if (span_equals(name, PyTuple_GET_ITEM(st->h2_forwarding, f))) forwarded = 1;
        }
    }
    PyObject *method = pseudo[PSEUDO_METHOD], *path = pseudo[PSEUDO_PATH];
    PyObject *authority = pseudo[PSEUDO_AUTHORITY], *scheme = pseudo[PSEUDO_SCHEME];
    if (method == NULL || PyBytes_GET_SIZE(method) == 0) Py_RETURN_NONE;
    const char *m = PyBytes_AS_STRING(method), *p = PyBytes_AS_STRING(path ? path : method);
    Py_ssize_t m_size = PyBytes_GET_SIZE(method), p_size = path ? PyBytes_GET_SIZE(path) : 0;
    if (m_size == 7 && memcmp(m, "CONNECT", 7) == 0) Py_RETURN_NONE; /* (a 501) */
    if (scheme == NULL || PyBytes_GET_SIZE(scheme) == 0 || p_size == 0) Py_RETURN_NONE;
    if (!(p[0] == '/' || (p_size == 1 && p[0] == '*' && m_size == 7 && memcmp(m, "OPTIONS", 7) == 0)))
        Py_RETURN_NONE;
    if (p_size > request_line || hosts > 1) Py_RETURN_NONE;
    if (authority != NULL && hosts == 1 && PyObject_RichCompareBool(host, authority, Py_NE))
        Py_RETURN_NONE;

    /* The headers: the :authority as host if there is none, then the fields but the cookies,
     * in order, then the cookies joined (RFC 9113 §8.2.3). */
    int insert_host = authority != NULL && hosts == 0;
    PyObject *headers = PyList_New(regular + insert_host + (cookies ? 1 : 0));
    if (headers == NULL) return NULL;
    Py_ssize_t at = 0;
    if (insert_host) {
        PyObject *pair = PyTuple_Pack(2, st->s_host_field, authority);
        if (pair == NULL) goto fail;
        PyList_SET_ITEM(headers, at++, pair);
    }
    PyObject *cookie = NULL;
    char *c = NULL;
    if (cookies) {
        cookie = PyBytes_FromStringAndSize(NULL, cookie_size + 2 * (cookies - 1));
        if (cookie == NULL) goto fail;
        c = PyBytes_AS_STRING(cookie);
    }
    for (Py_ssize_t i = 0, joined = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(fields, i);
        PyObject *name = PySequence_Fast_GET_ITEM(pair, 0);
        if (PyBytes_AS_STRING(name)[0] == ':' && PyBytes_GET_SIZE(name)) continue;
        if (PyBytes_GET_SIZE(name) == 6 && memcmp(PyBytes_AS_STRING(name), "cookie", 6) == 0) {
            PyObject *value = PySequence_Fast_GET_ITEM(pair, 1);
            if (joined++) {
                memcpy(c, "; ", 2);
                c += 2;
            }
            memcpy(c, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
            c += PyBytes_GET_SIZE(value);
            continue;
        }
        PyObject *item = PyTuple_Check(pair) ? Py_NewRef(pair)
                                             : PyTuple_Pack(2, name, PySequence_Fast_GET_ITEM(pair, 1));
        if (item == NULL) {
            Py_XDECREF(cookie);
            goto fail;
        }
        PyList_SET_ITEM(headers, at++, item);
    }
    if (cookie != NULL) {
        PyObject *pair = PyTuple_Pack(2, st->s_cookie_field, cookie);
        Py_DECREF(cookie);
        if (pair == NULL) goto fail;
        PyList_SET_ITEM(headers, at++, pair);
    }
    PyObject *head_args[9] = {
        PyUnicode_DecodeASCII(m, m_size, "replace"),
        path,
        st->s_2,
        headers,
        Py_True,
        !end_stream && expect_continue ? Py_True : Py_False,
        end_stream ? Py_False : Py_True,
        Py_False,
        forwarded ? Py_True : Py_False,
    };
    if (head_args[0] == NULL) goto fail;
    for (int i = 1; i < 9; i++) Py_INCREF(head_args[i]);
    PyObject *result = new_event(st->h2_RequestHead, st->h2_head_offsets, head_args, 9);
    Py_DECREF(headers);
    return result;
fail:
    Py_DECREF(headers);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP/2's frames in received bytes: frontend/http2_frames.py's split_frames */

#define H2_HEADER_SIZE 9

/* split_frames(data, max_size): the whole frames at the start of `data` as (type, flags,
 * stream id, payload) tuples, how many bytes they took, and whether the frame after them
 * announces a payload larger than `max_size`. The reserved bit of the stream id is dropped. */
static PyObject *split_frames(PyObject *Py_UNUSED(module), PyObject *const *args,
                              Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "expected (bytes, max_size)");
        return NULL;
    }
    Py_ssize_t max_size = PyLong_AsSsize_t(args[1]);
    if (max_size == -1 && PyErr_Occurred()) return NULL;
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t end = PyBytes_GET_SIZE(args[0]), pos = 0;
    int too_large = 0;
    PyObject *frames = PyList_New(0);
    if (frames == NULL) return NULL;
    while (end - pos >= H2_HEADER_SIZE) {
        const unsigned char *h = data + pos;
        Py_ssize_t length = ((Py_ssize_t)h[0] << 16) | ((Py_ssize_t)h[1] << 8) | h[2];
        if (length > max_size) {
            too_large = 1;
            break;
        }
        Py_ssize_t stop = pos + H2_HEADER_SIZE + length;
        if (stop > end) break;
        PyObject *frame = PyTuple_New(4);
        if (frame == NULL) goto error;
        PyObject *items[4] = {
            PyLong_FromLong(h[3]),
            PyLong_FromLong(h[4]),
            PyLong_FromUnsignedLong(get_u32(h + 5) & 0x7FFFFFFFu),
            PyBytes_FromStringAndSize((const char *)h + H2_HEADER_SIZE, length),
        };
        for (int i = 0; i < 4; i++) PyTuple_SET_ITEM(frame, i, items[i]); /* (NULLs too) */
        if (!items[0] || !items[1] || !items[2] || !items[3] || PyList_Append(frames, frame)) {
            Py_DECREF(frame);
            goto error;
        }
        Py_DECREF(frame);
        pos = stop;
    }
    return Py_BuildValue("(NnO)", frames, pos, too_large ? Py_True : Py_False);
error:
    Py_DECREF(frames);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Set-up, by the Python modules at import */

static void set(PyObject **slot, PyObject *value) { Py_XSETREF(*slot, Py_NewRef(value)); }

static PyObject *setup_wire(PyObject *module, PyObject *args) {
    State *st = get_state(module);
    PyObject *Request, *ResponseStart, *WireError, *struct_error, *encoders, *decoders;
    Py_ssize_t max_payload;
    int kinds[4];
    if (!PyArg_ParseTuple(args, "OOOOO!O!n(iiii)", &Request, &ResponseStart, &WireError,
                          &struct_error, &PyDict_Type, &encoders, &PyDict_Type, &decoders,
                          &max_payload, &kinds[0], &kinds[1], &kinds[2], &kinds[3]))
        return NULL;
    if (kinds[0] != REQUEST || kinds[1] != RESPONSE_START || kinds[2] != RESPONSE_START_END ||
        kinds[3] != RESPONSE_START_FINISHED) {
        PyErr_SetString(PyExc_ValueError, "the frame types differ from this module's");
        return NULL;
    }
    set(&st->Request, Request);
    set(&st->ResponseStart, ResponseStart);
    set(&st->WireError, WireError);
    set(&st->struct_error, struct_error);
    set(&st->encoders, encoders);
    set(&st->decoders, decoders);
    st->max_payload = max_payload;
    if (slot_offsets(Request, st->request_offsets, R_COUNT)) return NULL;
    if (slot_offsets(ResponseStart, st->start_offsets, S_COUNT)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *setup_response(PyObject *module, PyObject *args) {
    State *st = get_state(module);
    PyObject *plan, *none, *length, *chunked, *close, *lines, *defaults;
    if (!PyArg_ParseTuple(args, "OOOOOO!O", &plan, &none, &length, &chunked, &close,
                          &PyDict_Type, &lines, &defaults))
        return NULL;
    set(&st->default_headers, defaults);
    set(&st->ResponsePlan, plan);
    set(&st->framing_none, none);
    set(&st->framing_length, length);
    set(&st->framing_chunked, chunked);
    set(&st->framing_close, close);
    set(&st->status_lines, lines);
    Py_RETURN_NONE;
}

/* The fields through which a proxy names the client, as a tuple of bytes. */
static PyObject *forwarding_tuple(PyObject *forwarding) {
    PyObject *fields = PySequence_Tuple(forwarding);
    if (fields == NULL) return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(fields, i))) {
            Py_DECREF(fields);
            PyErr_SetString(PyExc_TypeError, "the forwarding fields must be bytes");
            return NULL;
        }
    }
    return fields;
}

static PyObject *setup_parser(PyObject *module, PyObject *args) {
    State *st = get_state(module);
    PyObject *head, *methods, *forwarding;
    if (!PyArg_ParseTuple(args, "OO!O", &head, &PyFrozenSet_Type, &methods, &forwarding))
        return NULL;
    PyObject *fields = forwarding_tuple(forwarding);
    if (fields == NULL) return NULL;
    set(&st->RequestHead, head);
    set(&st->methods, methods);
    Py_XSETREF(st->forwarding_fields, fields);
    if (slot_offsets(head, st->head_offsets, 9)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *setup_hpack(PyObject *module, PyObject *args) {
    State *st = get_state(module);
    PyObject *table, *codes, *lengths;
    if (!PyArg_ParseTuple(args, "OOO", &table, &codes, &lengths)) return NULL;
    PyObject *entries = PySequence_Tuple(table);
    if (entries == NULL) return NULL;
    int ok = PyTuple_GET_SIZE(entries) == STATIC_ENTRIES;
    for (Py_ssize_t i = 0; ok && i < STATIC_ENTRIES; i++) {
        PyObject *entry = PyTuple_GET_ITEM(entries, i);
        ok = PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) == 2 &&
             PyBytes_Check(PyTuple_GET_ITEM(entry, 0)) && PyBytes_Check(PyTuple_GET_ITEM(entry, 1));
    }
    if (!ok || PySequence_Size(codes) != HUFFMAN_SYMBOLS ||
        PySequence_Size(lengths) != HUFFMAN_SYMBOLS) {
        Py_DECREF(entries);
        PyErr_SetString(PyExc_ValueError, "not HPACK's static table and Huffman code");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < HUFFMAN_SYMBOLS; i++) {
        PyObject *code = PySequence_GetItem(codes, i), *length = PySequence_GetItem(lengths, i);
        unsigned long c = code ? PyLong_AsUnsignedLong(code) : (unsigned long)-1;
        long l = length ? PyLong_AsLong(length) : -1;
        Py_XDECREF(code);
        Py_XDECREF(length);
        if (PyErr_Occurred() || l < 5 || l > 30 || c >> l) {
            Py_DECREF(entries);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "not HPACK's Huffman code");
            return NULL;
        }
        st->huffman_codes[i] = (uint32_t)c;
        st->huffman_lengths[i] = (uint8_t)l;
    }
    Py_XSETREF(st->static_table, entries);
    Py_RETURN_NONE;
}

static PyObject *setup_http2(PyObject *module, PyObject *args) {
    State *st = get_state(module);
    PyObject *head, *forwarding, *none, *length, *stream;
    if (!PyArg_ParseTuple(args, "OOOOO", &head, &forwarding, &none, &length, &stream)) return NULL;
    PyObject *fields = forwarding_tuple(forwarding);
    if (fields == NULL) return NULL;
    set(&st->h2_RequestHead, head);
    Py_XSETREF(st->h2_forwarding, fields);
    set(&st->h2_none, none);
    set(&st->h2_length, length);
    set(&st->h2_stream, stream);
    if (slot_offsets(head, st->h2_head_offsets, 9)) return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------------ */
/* The load generator's fast path: bench/http1.py's whole_response */

/* Whether "close" is in data[0:size], ignoring ASCII case. */
static int has_close(const char *data, Py_ssize_t size) {
    for (Py_ssize_t i = 0; i + 5 <= size; i++) {
        if (lower_equals(data + i, 5, "close")) return 1;
    }
    return 0;
}

static PyObject *whole_response(PyObject *Py_UNUSED(module), PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "expected bytes");
        return NULL;
    }
    const char *data = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    if (size < 12 || memcmp(data, "HTTP/1.1 ", 9) != 0) return PyLong_FromLong(0);
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (data[i] < '0' || data[i] > '9') return PyLong_FromLong(0);
        status = status * 10 + (data[i] - '0');
    }
    if (status < 200 || status == 204 || status == 304) return PyLong_FromLong(0);
    const char *end = NULL;
    for (const char *at = data; (at = find_crlf(at, data + size)) != NULL; at += 2) {
        if (data + size - at >= 4 && at[2] == '\r' && at[3] == '\n') {
            end = at;
            break;
        }
    }
    if (end == NULL) return PyLong_FromLong(0);
    long long length = -1;
    for (const char *line = data; line <= end;) {
        /* A line runs to the next CR or LF, which must start a CRLF, or to the end of the head. */
        const char *stop = line;
        while (stop < end && *stop != '\r' && *stop != '\n') stop++;
        if (stop < end && (stop[0] != '\r' || stop[1] != '\n')) return PyLong_FromLong(0);
        if (line != data) { /* not the status line */
            const char *colon = memchr(line, ':', (size_t)(stop - line));
            if (colon == NULL || colon == line) return PyLong_FromLong(0);
            if (line[0] == ' ' || line[0] == '\t' || colon[-1] == ' ' || colon[-1] == '\t')
                return PyLong_FromLong(0);
            Py_ssize_t name_size = colon - line;
            const char *value = colon + 1, *value_end = stop;
            if (lower_equals(line, name_size, "content-length")) {
                while (value < value_end && (*value == ' ' || *value == '\t')) value++;
                while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
                    value_end--;
                if (length >= 0 || value == value_end || value_end - value > 18)
                    return PyLong_FromLong(0);
                length = 0;
                for (const char *q = value; q < value_end; q++) {
                    if (*q < '0' || *q > '9') return PyLong_FromLong(0);
                    length = length * 10 + (*q - '0');
                }
            } else if (lower_equals(line, name_size, "transfer-encoding") ||
                       (lower_equals(line, name_size, "connection") &&
                        has_close(value, value_end - value))) {
                return PyLong_FromLong(0);
            }
        }
        line = stop + 2;
    }
    if (length != (long long)(size - (end - data) - 4)) return PyLong_FromLong(0);
    return PyLong_FromLong(status);
}

/* memory.py's trim through ctypes costs ctypes' 0.6 MiB in every process that trims, and
 * ctypes is imported right after a burst, when its objects pin the burst's allocator arenas. */
static PyObject *malloc_trim_(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg)) {
#ifdef __GLIBC__
    return PyBool_FromLong(malloc_trim(0));
#else
    Py_RETURN_NONE;
#endif
}

/* memory.py's set_malloc_thresholds, for the same reason: they are set at every process's
 * start, and ctypes would cost its memory from then on. */
static PyObject *set_malloc_thresholds(PyObject *Py_UNUSED(module), PyObject *args) {
    int mmap_least, trim_least;
    if (!PyArg_ParseTuple(args, "ii:set_malloc_thresholds", &mmap_least, &trim_least)) return NULL;
#ifdef __GLIBC__
    return PyBool_FromLong(mallopt(M_MMAP_THRESHOLD, mmap_least) &&
                           mallopt(M_TRIM_THRESHOLD, trim_least));
#else
    Py_RETURN_NONE;
#endif
}

static PyMethodDef methods[] = {
    {"malloc_trim", malloc_trim_, METH_NOARGS, "memory.malloc_trim, compiled."},
    {"set_malloc_thresholds", set_malloc_thresholds, METH_VARARGS,
     "memory.set_malloc_thresholds, compiled."},
    {"setup_wire", setup_wire, METH_VARARGS,
     "setup_wire(Request, ResponseStart, WireError, struct_error, encoders, decoders, "
     "max_payload, frame_types): what the codec needs from wire.py."},
    {"setup_response", setup_response, METH_VARARGS,
     "setup_response(ResponsePlan, none, length, chunked, close, status_lines, "
     "default_headers): what "
     "plan_response needs from response.py."},
    {"setup_parser", setup_parser, METH_VARARGS,
     "setup_parser(RequestHead, methods, forwarding_fields): what parse_plain_request needs "
     "from http_grammar.py."},
    {"setup_hpack", setup_hpack, METH_VARARGS,
     "setup_hpack(static_table, huffman_codes, huffman_lengths): hpack's tables, for "
     "encode_fields."},
    {"setup_http2", setup_http2, METH_VARARGS,
     "setup_http2(RequestHead, forwarding_fields, none, length, stream): what accepted_head "
     "and response_block need from http2_rules.py."},
    {"encode_fields", encode_fields, METH_O, "frontend.http2_hpack.encode_fields, compiled."},
    {"response_block", (PyCFunction)(void (*)(void))response_block, METH_FASTCALL,
     "frontend.http2_rules.response_block, compiled."},
    {"accepted_head", (PyCFunction)(void (*)(void))accepted_head, METH_FASTCALL,
     "frontend.http2_rules.accepted_head, compiled."},
    {"parse_plain_request", (PyCFunction)(void (*)(void))parse_plain_request, METH_FASTCALL,
     "framing.parse_plain_request, compiled."},
    {"skip_chunks", (PyCFunction)(void (*)(void))skip_chunks, METH_FASTCALL,
     "framing.skip_chunks, compiled."},
    {"split_frames", (PyCFunction)(void (*)(void))split_frames, METH_FASTCALL,
     "frontend.http2_frames.split_frames, compiled."},
    {"encode_parts", encode_parts, METH_O, "wire.encode_parts, compiled."},
    {"checked_headers", checked_headers, METH_O, "worker.asgi.checked_headers, compiled."},
    {"decode_whole_frames", (PyCFunction)(void (*)(void))decode_whole_frames, METH_FASTCALL,
     "wire._decode_whole_frames, compiled."},
    {"plan_response", (PyCFunction)(void (*)(void))plan_response, METH_FASTCALL | METH_KEYWORDS,
     "response.plan_response, compiled."},
    {"whole_response", whole_response, METH_O, "bench.http1.whole_response, compiled."},
    {NULL, NULL, 0, NULL},
};

#define ALL_OBJECTS(X)                                                                         \
    X(Request) X(ResponseStart) X(WireError) X(struct_error) X(encoders) X(decoders)            \
    X(ResponsePlan) X(framing_none) X(framing_length) X(framing_chunked) X(framing_close)      \
    X(status_lines) X(default_headers) X(RequestHead) X(methods) X(forwarding_fields) X(s_11)  \
    X(s_10) X(s_request_id) X(s_method) X(s_scheme) X(s_http_version) X(s_raw_path)            \
    X(s_query_string) X(s_headers) X(s_client) X(s_server) X(s_more_body)                      \
    X(s_expect_continue) X(s_websocket) X(s_status) X(s_body) X(s_finished) X(s_extra)         \
    X(s_request_line) X(s_fields) X(s_field_size) X(static_table) X(h2_RequestHead)           \
    X(h2_forwarding) X(h2_none) X(h2_length) X(h2_stream) X(s_2) X(s_host_field)              \
    X(s_cookie_field)

static int exec_module(PyObject *module) {
    State *st = get_state(module);
#define INTERN(name)                                                                             \
    if ((st->s_##name = PyUnicode_InternFromString(#name)) == NULL) return -1;
    INTERN(request_id) INTERN(method) INTERN(scheme) INTERN(http_version) INTERN(raw_path)
    INTERN(query_string) INTERN(headers) INTERN(client) INTERN(server) INTERN(more_body)
    INTERN(expect_continue) INTERN(websocket) INTERN(status) INTERN(body) INTERN(finished)
    INTERN(extra) INTERN(request_line) INTERN(fields) INTERN(field_size)
#undef INTERN
    if ((st->s_11 = PyUnicode_InternFromString("1.1")) == NULL) return -1;
    if ((st->s_10 = PyUnicode_InternFromString("1.0")) == NULL) return -1;
    if ((st->s_2 = PyUnicode_InternFromString("2")) == NULL) return -1;
    if ((st->s_host_field = PyBytes_FromString("host")) == NULL) return -1;
    if ((st->s_cookie_field = PyBytes_FromString("cookie")) == NULL) return -1;
    return 0;
}

static int traverse(PyObject *module, visitproc visit, void *arg) {
    State *st = get_state(module);
#define VISIT(name) Py_VISIT(st->name);
    ALL_OBJECTS(VISIT)
#undef VISIT
    for (int i = 0; i < BLOCK_CACHE; i++) {
        Py_VISIT(st->blocks[i].key);
        Py_VISIT(st->blocks[i].result);
    }
    return 0;
}

static int clear(PyObject *module) {
    State *st = get_state(module);
#define CLEAR(name) Py_CLEAR(st->name);
    ALL_OBJECTS(CLEAR)
#undef CLEAR
    for (int i = 0; i < BLOCK_CACHE; i++) {
        Py_CLEAR(st->blocks[i].key);
        Py_CLEAR(st->blocks[i].result);
    }
    return 0;
}

static void free_module(void *module) { clear((PyObject *)module); }

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    /* No global state: every interpreter has its own module, under its own GIL. */
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "interpserve._speedups",
    .m_doc = "Compiled versions of the wire codec's and the response head's hot functions.",
    .m_size = sizeof(State),
    .m_methods = methods,
    .m_slots = slots,
    .m_traverse = traverse,
    .m_clear = clear,
    .m_free = free_module,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModuleDef_Init(&module_def); }
