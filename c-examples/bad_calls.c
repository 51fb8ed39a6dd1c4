/*
 * Bad calls from C get their documented result code, never a crash: NULL handles
 * and out-pointers, buffers too small, callbacks that fail, calls that are not
 * allowed from inside a callback, malformed arguments.
 *
 * Prints one line per failed expectation and exits 1 if there was any.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smslink.h"

static int checks, failures;

static void expect(const char *what, smslink_result got, smslink_result want, int line) {
  checks++;
  if (got != want) {
    failures++;
    printf("line %d: %s gave %s, expected %s\n", line, what, smslink_result_name(got),
           smslink_result_name(want));
  }
}

#define EXPECT(call, want) expect(#call, (call), (want), __LINE__)

/* A plain condition; the message is printed when it does not hold. */
static void expect_true(int cond, int line, const char *fmt, ...) {
  checks++;
  if (cond)
    return;
  failures++;
  va_list ap;
  va_start(ap, fmt);
  printf("line %d: ", line);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

static const uint8_t PSK[] = "bad calls key, 16 bytes+";
#define PSK_LEN (sizeof PSK - 1)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct callback_state {
  smslink_node *node;
  int calls;
  int fail;
  smslink_result free_inside;
  smslink_result dispatch_inside;
  smslink_result wait_inside;
  smslink_result shutdown_inside;
  smslink_result room_inside;
};

static int failing_callback(void *userdata, const smslink_event *ev) {
  struct callback_state *st = userdata;
  (void)ev;
  st->calls++;
  return st->fail;
}

static int reentrant_callback(void *userdata, const smslink_event *ev) {
  struct callback_state *st = userdata;
  smslink_event other;
  (void)ev;
  st->calls++;
  st->free_inside = smslink_node_free(st->node);
  st->shutdown_inside = smslink_node_shutdown(st->node, 0, NULL);
  st->dispatch_inside = smslink_node_dispatch(st->node, 0, failing_callback, st, NULL);
  st->wait_inside = smslink_node_wait_event(st->node, 0, &other);
  size_t room = 0;
  st->room_inside = smslink_node_wait_for_room(st->node, 0, 1, 0, &room);
  return 0;
}

static void null_handles(void) {
  smslink_event ev;
  smslink_receipt r;
  smslink_link_stats ls;
  smslink_smsc_stats ss;
  smslink_message m;
  size_t n = 0;
  uint32_t u = 0;
  int fd = 0;
  uint8_t buf[16];
  memset(&m, 0, sizeof m);

  EXPECT(smslink_config_new(NULL), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_config_add_link_dial(NULL, "a", PSK, PSK_LEN, "127.0.0.1:1", &u),
         SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_config_link_set_capacity(NULL, 0, 10), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_config_set_smsc(NULL, "127.0.0.1:1", "u", "p"), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_smpp_options_default(NULL), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_new(NULL, NULL), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_send(NULL, &m, &r), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_send_text(NULL, "1", "2", "x", 0, &r), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_send_binary(NULL, "1", "2", buf, 1, 0, &r), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_send_batch(NULL, 0, &m, 1, &n, NULL), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_ack(NULL, 0, 1, SMSLINK_OUTCOME_ACCEPTED, 0), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_poll_event(NULL, &ev), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_wait_event(NULL, 0, &ev), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_dispatch(NULL, 0, failing_callback, NULL, &n), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_wait_for_room(NULL, 0, 1, 0, &n), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_event_fd(NULL, &fd), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_clear_event_fd(NULL), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_link_stats(NULL, 0, &ls), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_smsc_stats(NULL, &ss), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_local_port(NULL, 0, NULL), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_free(NULL), SMSLINK_OK);
  EXPECT(smslink_node_shutdown(NULL, 0, NULL), SMSLINK_OK);
  smslink_config_free(NULL);
  smslink_cimd2_packet_free(NULL);
  smslink_cimd2_decoder_free(NULL);
  EXPECT(smslink_cimd2_packet_new(3, 1, NULL), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_cimd2_packet_add_param(NULL, 21, buf, 1), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_cimd2_packet_encode(NULL, true, buf, sizeof buf, &n), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_cimd2_decoder_push(NULL, buf, 1), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_cimd2_decoder_next(NULL, NULL), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_last_error(NULL, 10, &n), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_last_error(NULL, 0, NULL), SMSLINK_NULL_PARAMETER);
}

static void codec_buffers(void) {
  smslink_cimd2_packet *p = NULL;
  size_t need = 0, got = 0;
  uint8_t small[4];
  EXPECT(smslink_cimd2_packet_new(100, 1, &p), SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_cimd2_packet_new(3, 1, &p), SMSLINK_OK);
  EXPECT(smslink_cimd2_packet_add_param(p, 21, (const uint8_t *)"123", 3), SMSLINK_OK);
  EXPECT(smslink_cimd2_packet_add_param(p, 1000, (const uint8_t *)"1", 1),
         SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_cimd2_packet_add_param(p, 33, NULL, 5), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_cimd2_packet_add_param(p, 33, (const uint8_t *)"\x03", 1),
         SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_cimd2_packet_encode(p, true, small, sizeof small, &need),
         SMSLINK_BUFFER_TOO_SMALL);
  uint8_t *frame = malloc(need);
  EXPECT(smslink_cimd2_packet_encode(p, true, frame, need, &got), SMSLINK_OK);
  expect_true(got == need, __LINE__, "encode wrote %zu bytes, said %zu", got, need);
  EXPECT(smslink_cimd2_packet_encode(p, true, NULL, need, &got), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_cimd2_packet_encode(p, true, frame, need, NULL), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_cimd2_packet_get_param(p, 21, small, 2, &got), SMSLINK_BUFFER_TOO_SMALL);
  EXPECT(smslink_cimd2_packet_get_param(p, 22, small, 4, &got), SMSLINK_NOT_FOUND);
  EXPECT(smslink_cimd2_packet_param_at(p, 5, NULL, small, 4, &got), SMSLINK_NULL_PARAMETER);
  uint16_t code = 0;
  EXPECT(smslink_cimd2_packet_param_at(p, 5, &code, small, 4, &got), SMSLINK_NOT_FOUND);
  smslink_message m;
  smslink_cimd2_packet *alive = NULL;
  EXPECT(smslink_cimd2_packet_new(40, 1, &alive), SMSLINK_OK);
  EXPECT(smslink_cimd2_packet_to_message(alive, &m), SMSLINK_INVALID_ARGUMENT);
  smslink_cimd2_packet_free(alive);

  smslink_cimd2_decoder *d = NULL;
  smslink_cimd2_packet *out = NULL;
  EXPECT(smslink_cimd2_decoder_new(0, &d), SMSLINK_OK);
  EXPECT(smslink_cimd2_decoder_next(d, &out), SMSLINK_EMPTY);
  EXPECT(smslink_cimd2_decoder_push(d, frame, need - 1), SMSLINK_OK);
  EXPECT(smslink_cimd2_decoder_next(d, &out), SMSLINK_EMPTY);
  EXPECT(smslink_cimd2_decoder_push(d, frame + need - 1, 1), SMSLINK_OK);
  EXPECT(smslink_cimd2_decoder_next(d, NULL), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_cimd2_decoder_next(d, &out), SMSLINK_OK);
  smslink_cimd2_packet_free(out);
  /* A corrupted checksum: malformed, and the decoder goes on. */
  frame[need - 2] = frame[need - 2] == '0' ? '1' : '0';
  EXPECT(smslink_cimd2_decoder_push(d, frame, need), SMSLINK_OK);
  EXPECT(smslink_cimd2_decoder_next(d, &out), SMSLINK_MALFORMED);
  EXPECT(smslink_cimd2_decoder_next(d, &out), SMSLINK_EMPTY);

  /* The error text is cut to the caller's buffer, and its full length reported. */
  char text[8];
  size_t len = 0;
  EXPECT(smslink_last_error(text, sizeof text, &len), SMSLINK_OK);
  expect_true(!(len < sizeof text || strlen(text) != sizeof text - 1), __LINE__, "last_error: len %zu, text %s", len, text);

  smslink_cimd2_decoder_free(d);
  smslink_cimd2_packet_free(p);
  free(frame);
}

static void config_errors(void) {
  smslink_config *cfg = NULL;
  smslink_node *node = NULL;
  uint32_t link = 99;
  EXPECT(smslink_config_new(&cfg), SMSLINK_OK);
  EXPECT(smslink_node_new(cfg, &node), SMSLINK_CONFIG); /* no link */
  EXPECT(smslink_config_add_link_dial(cfg, "x", PSK, PSK_LEN, "not an address", &link),
         SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_config_add_link_dial(cfg, "x", PSK, 0, "127.0.0.1:1", &link),
         SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_config_add_link_dial(cfg, "x", PSK, 15, "127.0.0.1:1", &link),
         SMSLINK_INVALID_ARGUMENT); /* a pre-shared key needs 16 bytes */
  EXPECT(smslink_config_add_link_dial(cfg, "x", PSK, PSK_LEN, "127.0.0.1:1", NULL),
         SMSLINK_NULL_PARAMETER);
  expect_true(!(link != 99), __LINE__, "out_link written on failure");
  EXPECT(smslink_config_add_link_dial(cfg, "x", PSK, PSK_LEN, "127.0.0.1:1", &link), SMSLINK_OK);
  EXPECT(smslink_node_new(cfg, &node), SMSLINK_CONFIG); /* neither TLS nor plaintext */
  EXPECT(smslink_config_link_set_tls(cfg, link, "c.pem", "k.pem", NULL, NULL),
         SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_config_link_set_tls(cfg, link, "c.pem", "k.pem", NULL, "not hex"),
         SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_config_link_set_tls(cfg, link, "c.pem", "k.pem", "ca.pem", NULL), SMSLINK_OK);
  EXPECT(smslink_node_new(cfg, &node), SMSLINK_CONFIG); /* the files do not exist */
  EXPECT(smslink_config_link_set_insecure_plaintext(cfg, 7), SMSLINK_UNKNOWN_LINK);
  EXPECT(smslink_config_link_set_insecure_plaintext(cfg, link), SMSLINK_OK);
  EXPECT(smslink_config_link_set_capacity(cfg, link, 0), SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_config_link_set_capacity(cfg, link, 65537), SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_config_link_set_capacity(cfg, 7, 10), SMSLINK_UNKNOWN_LINK);
  EXPECT(smslink_config_link_set_capacity(cfg, link, 2), SMSLINK_OK);
  EXPECT(smslink_config_link_add_prefix(cfg, link, "46"), SMSLINK_OK);
  EXPECT(smslink_config_set_reconnect(cfg, 50, 10), SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_config_set_reassembly_timeout(cfg, 0), SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_config_set_reassembly_timeout(NULL, 1000), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_config_set_reassembly_timeout(cfg, 60000), SMSLINK_OK);
  EXPECT(smslink_config_link_set_heartbeat(cfg, link, 100, 50), SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_node_new(cfg, &node), SMSLINK_OK);
  smslink_config_free(cfg);

  /* Nobody answers on port 1: the ring fills, then says FULL at once. */
  smslink_receipt r = {0, 0};
  EXPECT(smslink_node_send_text(node, "1", "4612", "a", 1, &r), SMSLINK_OK);
  EXPECT(smslink_node_send_text(node, "1", "4612", "b", 2, NULL), SMSLINK_OK);
  smslink_receipt untouched = {77, 77};
  EXPECT(smslink_node_send_text(node, "1", "4612", "c", 3, &untouched), SMSLINK_FULL);
  expect_true(!(r.seq != 1 || untouched.seq != 77), __LINE__, "receipts: first seq %llu, after FULL %llu", (unsigned long long)r.seq,
           (unsigned long long)untouched.seq);
  /* Waiting for room: still none after the timeout, and the out-parameter untouched. */
  size_t room = 99;
  EXPECT(smslink_node_wait_for_room(node, 0, 1, 0, &room), SMSLINK_FULL);
  EXPECT(smslink_node_wait_for_room(node, 0, 1, 20, &room), SMSLINK_FULL);
  expect_true(room == 99, __LINE__, "out_room written on FULL: %zu", room);
  EXPECT(smslink_node_wait_for_room(node, 3, 1, 0, &room), SMSLINK_UNKNOWN_LINK);
  EXPECT(smslink_node_wait_for_room(node, 0, 1, 0, NULL), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_send_text(node, "1", "3312", "c", 3, NULL), SMSLINK_NO_ROUTE);
  EXPECT(smslink_node_send_text(node, "1", "this address is much too long", "c", 3, NULL),
         SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_node_send_text(node, "1;", "46", "c", 3, NULL), SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_node_send_text(node, "1", "46", "\xff\xfe", 3, NULL), SMSLINK_INVALID_ARGUMENT);
  static uint8_t big[SMSLINK_MAX_LONG_PAYLOAD + 1];
  EXPECT(smslink_node_send_binary(node, "1", "46", big, sizeof big, 0, NULL),
         SMSLINK_INVALID_ARGUMENT);
  /* 256 parts: refused at the send, nothing stored. */
  static char too_many_parts[255 * 153 + 2];
  memset(too_many_parts, 'x', sizeof too_many_parts - 1);
  EXPECT(smslink_node_send_text(node, "1", "46", too_many_parts, 3, NULL), SMSLINK_INVALID_ARGUMENT);
  uint32_t parts = 0;
  EXPECT(smslink_sms_parts((const uint8_t *)too_many_parts, strlen(too_many_parts),
                           SMSLINK_CODING_TEXT, &parts), SMSLINK_OK);
  expect_true(parts == 256, __LINE__, "parts of 39016 characters: %u", (unsigned)parts);
  EXPECT(smslink_sms_parts((const uint8_t *)"hi", 2, SMSLINK_CODING_TEXT, &parts), SMSLINK_OK);
  expect_true(parts == 1, __LINE__, "parts of hi: %u", (unsigned)parts);
  EXPECT(smslink_sms_parts(big, 141, SMSLINK_CODING_BINARY, &parts), SMSLINK_OK);
  expect_true(parts == 2, __LINE__, "parts of 141 octets: %u", (unsigned)parts);
  EXPECT(smslink_sms_parts(NULL, 0, SMSLINK_CODING_TEXT, &parts), SMSLINK_OK);
  EXPECT(smslink_sms_parts(NULL, 3, SMSLINK_CODING_TEXT, &parts), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_sms_parts((const uint8_t *)"hi", 2, SMSLINK_CODING_TEXT, NULL), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_sms_parts((const uint8_t *)"hi", 2, 7, &parts), SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_sms_parts((const uint8_t *)"\xff", 1, SMSLINK_CODING_TEXT, &parts),
         SMSLINK_INVALID_ARGUMENT);
  size_t got = 0;
  EXPECT(smslink_node_received_payload(node, 0, 1, big, sizeof big, &got), SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_node_received_payload(NULL, 0, 1, big, sizeof big, &got), SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_node_send_binary(node, "1", "46", NULL, 3, 0, NULL), SMSLINK_NULL_PARAMETER);
  smslink_message m;
  memset(&m, 'x', sizeof m); /* no NUL in the addresses */
  EXPECT(smslink_node_send(node, &m, NULL), SMSLINK_INVALID_ARGUMENT);
  memset(&m, 0, sizeof m);
  strcpy(m.from, "1");
  strcpy(m.to, "46");
  m.coding = 7;
  EXPECT(smslink_node_send(node, &m, NULL), SMSLINK_INVALID_ARGUMENT);
  m.coding = SMSLINK_CODING_BINARY;
  m.payload_len = SMSLINK_MAX_PAYLOAD + 1;
  EXPECT(smslink_node_send(node, &m, NULL), SMSLINK_INVALID_ARGUMENT);
  m.payload_len = 1;
  EXPECT(smslink_node_send_on(node, 3, &m, NULL), SMSLINK_UNKNOWN_LINK);
  size_t taken = 99;
  EXPECT(smslink_node_send_batch(node, 0, &m, 1, &taken, NULL), SMSLINK_OK);
  expect_true(!(taken != 0), __LINE__, "batch on a full ring took %zu", taken);
  EXPECT(smslink_node_ack(node, 0, 1, 9, 0), SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_node_ack(node, 5, 1, SMSLINK_OUTCOME_ACCEPTED, 0), SMSLINK_UNKNOWN_LINK);
  smslink_link_stats ls;
  EXPECT(smslink_node_link_stats(node, 5, &ls), SMSLINK_UNKNOWN_LINK);
  smslink_smsc_stats ss;
  EXPECT(smslink_node_smsc_stats(node, &ss), SMSLINK_NOT_FOUND);
  uint16_t port = 0;
  EXPECT(smslink_node_local_port(node, 0, &port), SMSLINK_NOT_FOUND); /* it dials */
  EXPECT(smslink_node_local_port(node, 4, &port), SMSLINK_UNKNOWN_LINK);
  EXPECT(smslink_node_link_id(node, "nope", &link), SMSLINK_UNKNOWN_LINK);
  EXPECT(smslink_node_dispatch(node, 0, NULL, NULL, NULL), SMSLINK_NULL_PARAMETER);
  bool drained = true;
  EXPECT(smslink_node_shutdown(node, 0, &drained), SMSLINK_OK);
  expect_true(!(drained), __LINE__, "a node with unsent messages reported drained");
}

/* SMPP options out of range are refused when set, naming the field; the SMSC set
 * before stays. */
static void smpp_options(void) {
  smslink_config *cfg = NULL;
  smslink_smpp_options o;
  char text[256];
  size_t n = 0;
  EXPECT(smslink_config_new(&cfg), SMSLINK_OK);
  EXPECT(smslink_smpp_options_default(&o), SMSLINK_OK);
  strcpy(o.system_type, "VMA");
  o.destination_numeric_ton = 2; /* national */
  EXPECT(smslink_config_set_smsc_smpp(cfg, "127.0.0.1:2775", "esme", "secret", &o), SMSLINK_OK);
  EXPECT(smslink_config_set_smsc_smpp(cfg, "127.0.0.1:2775", "esme", "secret", NULL),
         SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_config_set_smsc_smpp(NULL, "127.0.0.1:2775", "esme", "secret", &o),
         SMSLINK_NULL_PARAMETER);
  EXPECT(smslink_config_set_smsc_smpp(cfg, "127.0.0.1:2775", "a system id too long", "secret", &o),
         SMSLINK_INVALID_ARGUMENT);
  o.bind_mode = 7;
  EXPECT(smslink_config_set_smsc_smpp(cfg, "127.0.0.1:2775", "esme", "secret", &o),
         SMSLINK_INVALID_ARGUMENT);
  o.bind_mode = SMSLINK_BIND_TRANSMITTER_RECEIVER;
  o.window = 0;
  EXPECT(smslink_config_set_smsc_smpp(cfg, "127.0.0.1:2775", "esme", "secret", &o),
         SMSLINK_INVALID_ARGUMENT);
  o.window = 10;
  o.source_numeric_ton = 0x91; /* a GSM type-of-address octet, not an SMPP TON */
  EXPECT(smslink_config_set_smsc_smpp(cfg, "127.0.0.1:2775", "esme", "secret", &o),
         SMSLINK_INVALID_ARGUMENT);
  EXPECT(smslink_last_error(text, sizeof text, &n), SMSLINK_OK);
  expect_true(strstr(text, "source_numeric_ton 145") != NULL, __LINE__, "last error: %s", text);
  smslink_config_free(cfg);
}

static void callbacks(void) {
  smslink_config *cfg = NULL;
  smslink_node *im = NULL, *bs = NULL;
  uint32_t link = 0;
  EXPECT(smslink_config_new(&cfg), SMSLINK_OK);
  EXPECT(smslink_config_add_link_listen(cfg, "im", PSK, PSK_LEN, "127.0.0.1:0", &link),
         SMSLINK_OK);
  EXPECT(smslink_config_link_set_insecure_plaintext(cfg, link), SMSLINK_OK);
  EXPECT(smslink_node_new(cfg, &im), SMSLINK_OK);
  smslink_config_free(cfg);

  char addr[32];
  size_t need = 0, len = 0;
  EXPECT(smslink_node_local_addr(im, 0, addr, 4, &need), SMSLINK_BUFFER_TOO_SMALL);
  expect_true(!(need < 9), __LINE__, "local_addr needs %zu?", need);
  EXPECT(smslink_node_local_addr(im, 0, addr, need, &len), SMSLINK_BUFFER_TOO_SMALL);
  EXPECT(smslink_node_local_addr(im, 0, addr, need + 1, &len), SMSLINK_OK);

  EXPECT(smslink_config_new(&cfg), SMSLINK_OK);
  EXPECT(smslink_config_add_link_dial(cfg, "bs", PSK, PSK_LEN, addr, &link), SMSLINK_OK);
  EXPECT(smslink_config_link_set_insecure_plaintext(cfg, link), SMSLINK_OK);
  EXPECT(smslink_config_set_reconnect(cfg, 10, 100), SMSLINK_OK);
  EXPECT(smslink_node_new(cfg, &bs), SMSLINK_OK);
  smslink_config_free(cfg);

  /* The first event on bs is LINK_UP. A failing callback keeps it for next time. */
  struct callback_state st = {0};
  st.node = bs;
  st.fail = 5;
  size_t n = 99;
  smslink_result rc = SMSLINK_OK;
  double deadline = now_s() + 10;
  while (st.calls == 0 && now_s() < deadline)
    rc = smslink_node_dispatch(bs, 100, failing_callback, &st, &n);
  expect("dispatch with a failing callback", rc, SMSLINK_CALLBACK_ERROR, __LINE__);
  expect_true(!(n != 0 || st.calls != 1), __LINE__, "failing callback: count %zu, calls %d", n, st.calls);
  smslink_event ev;
  EXPECT(smslink_node_poll_event(bs, &ev), SMSLINK_OK);
  expect_true(!(ev.kind != SMSLINK_EVENT_LINK_UP || strcmp(ev.detail, "im") != 0), __LINE__, "refused event not delivered again: kind %u", (unsigned)ev.kind);

  /* Calls that would pull the node away under its own callback are refused. */
  EXPECT(smslink_node_send_text(bs, "1", "2", "wake im", 1, NULL), SMSLINK_OK);
  struct callback_state re = {0};
  re.node = im;
  deadline = now_s() + 10;
  while (re.calls == 0 && now_s() < deadline)
    EXPECT(smslink_node_dispatch(im, 100, reentrant_callback, &re, NULL), SMSLINK_OK);
  expect("free inside callback", re.free_inside, SMSLINK_WRONG_THREAD, __LINE__);
  expect("shutdown inside callback", re.shutdown_inside, SMSLINK_WRONG_THREAD, __LINE__);
  expect("dispatch inside callback", re.dispatch_inside, SMSLINK_WRONG_THREAD, __LINE__);
  expect("wait inside callback", re.wait_inside, SMSLINK_WRONG_THREAD, __LINE__);
  /* Waiting for room is allowed there: the node's loop frees it, not this thread. */
  expect("wait for room inside callback", re.room_inside, SMSLINK_OK, __LINE__);
  EXPECT(smslink_node_free(bs), SMSLINK_OK);
  EXPECT(smslink_node_free(im), SMSLINK_OK);
}

int main(void) {
  null_handles();
  codec_buffers();
  config_errors();
  smpp_options();
  callbacks();
  printf("bad_calls: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
