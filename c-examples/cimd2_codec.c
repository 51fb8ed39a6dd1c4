/*
 * The CIMD2 codec on its own: build packets, encode them into the caller's buffer,
 * and decode a byte stream cut into small pieces with the streaming decoder.
 *
 * A C SMSC stack that already owns its sockets uses exactly this: encode into its
 * own output buffer, push whatever recv() returned, take packets out.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smslink.h"

static void die(const char *what, smslink_result rc) {
  char text[256];
  size_t n = 0;
  smslink_last_error(text, sizeof text, &n);
  fprintf(stderr, "cimd2_codec: %s: %s: %s\n", what, smslink_result_name(rc), text);
  exit(1);
}

#define CHECK(call)              \
  do {                           \
    smslink_result rc_ = (call); \
    if (rc_ != SMSLINK_OK)       \
      die(#call, rc_);           \
  } while (0)

static void add_text(smslink_cimd2_packet *p, uint16_t code, const char *value) {
  CHECK(smslink_cimd2_packet_add_param(p, code, (const uint8_t *)value, strlen(value)));
}

/* Encode into a growing buffer: ask, and retry with the size the library needs. */
static size_t encode(const smslink_cimd2_packet *p, uint8_t **buf, size_t *cap) {
  size_t need = 0;
  smslink_result rc = smslink_cimd2_packet_encode(p, true, *buf, *cap, &need);
  if (rc == SMSLINK_BUFFER_TOO_SMALL) {
    printf("encode: buffer of %zu bytes too small, %zu needed\n", *cap, need);
    uint8_t *bigger = realloc(*buf, need);
    if (bigger == NULL)
      exit(1);
    *buf = bigger;
    *cap = need;
    rc = smslink_cimd2_packet_encode(p, true, *buf, *cap, &need);
  }
  if (rc != SMSLINK_OK)
    die("encode", rc);
  return need;
}

static void print_packet(const smslink_cimd2_packet *p) {
  uint8_t op = 0, number = 0;
  size_t count = 0;
  CHECK(smslink_cimd2_packet_header(p, &op, &number));
  CHECK(smslink_cimd2_packet_param_count(p, &count));
  printf("packet %02u:%03u with %zu parameters:", (unsigned)op, (unsigned)number, count);
  for (size_t i = 0; i < count; i++) {
    uint16_t code = 0;
    char value[128];
    size_t len = 0;
    smslink_result rc =
        smslink_cimd2_packet_param_at(p, i, &code, (uint8_t *)value, sizeof value - 1, &len);
    if (rc == SMSLINK_BUFFER_TOO_SMALL) {
      printf(" %03u=<%zu bytes>", (unsigned)code, len);
      continue;
    }
    if (rc != SMSLINK_OK)
      die("param_at", rc);
    value[len] = '\0';
    printf(" %03u=%s", (unsigned)code, value);
  }
  printf("\n");
}

int main(void) {
  /* 1. A submit built parameter by parameter. */
  smslink_cimd2_packet *submit = NULL;
  CHECK(smslink_cimd2_packet_new(3, 1, &submit));
  add_text(submit, 21, "4670123456");
  add_text(submit, 23, "12345");
  add_text(submit, 33, "hello from C");
  /* A value with a TAB would break the framing: refused. */
  smslink_result rc = smslink_cimd2_packet_add_param(submit, 33, (const uint8_t *)"a\tb", 3);
  if (rc != SMSLINK_INVALID_ARGUMENT)
    die("add_param with TAB", rc);

  /* 2. A submit made from a message: the library picks the coding. */
  smslink_message msg;
  memset(&msg, 0, sizeof msg);
  strcpy(msg.from, "Shop");
  strcpy(msg.to, "4670999888");
  msg.coding = SMSLINK_CODING_TEXT;
  const char *text = "Prix: 10\xe2\x82\xac {promo}"; /* "Prix: 10€ {promo}" */
  msg.payload_len = (uint32_t)strlen(text);
  memcpy(msg.payload, text, msg.payload_len);
  smslink_cimd2_packet *from_message = NULL;
  CHECK(smslink_cimd2_packet_new_submit(&msg, 3, &from_message));

  /* 3. Encode both, starting with a buffer that is too small. */
  size_t cap = 8;
  uint8_t *frame = malloc(cap);
  if (frame == NULL)
    return 1;
  uint8_t stream[4096];
  size_t stream_len = 0;
  const char garbage[] = "xx";
  memcpy(stream + stream_len, garbage, 2);
  stream_len += 2;
  size_t n = encode(submit, &frame, &cap);
  memcpy(stream + stream_len, frame, n);
  stream_len += n;
  n = encode(from_message, &frame, &cap);
  memcpy(stream + stream_len, frame, n);
  stream_len += n;
  /* A framed packet with a broken parameter, then the first packet again. */
  const char broken[] = "\x02" "03:005\t" "021\t" "\x03";
  memcpy(stream + stream_len, broken, strlen(broken));
  stream_len += strlen(broken);
  n = encode(submit, &frame, &cap);
  memcpy(stream + stream_len, frame, n);
  stream_len += n;
  printf("stream of %zu bytes\n", stream_len);

  /* 4. Decode, fed three bytes at a time as a slow socket would. */
  smslink_cimd2_decoder *decoder = NULL;
  CHECK(smslink_cimd2_decoder_new(0, &decoder));
  int packets = 0, malformed = 0, text_ok = 0;
  for (size_t off = 0; off < stream_len; off += 3) {
    size_t chunk = stream_len - off < 3 ? stream_len - off : 3;
    CHECK(smslink_cimd2_decoder_push(decoder, stream + off, chunk));
    for (;;) {
      smslink_cimd2_packet *p = NULL;
      rc = smslink_cimd2_decoder_next(decoder, &p);
      if (rc == SMSLINK_EMPTY)
        break;
      if (rc == SMSLINK_MALFORMED) {
        char why[256];
        size_t wl = 0;
        smslink_last_error(why, sizeof why, &wl);
        printf("malformed: %s\n", why);
        malformed++;
        continue;
      }
      if (rc != SMSLINK_OK)
        die("decoder_next", rc);
      packets++;
      print_packet(p);
      smslink_message back;
      if (smslink_cimd2_packet_to_message(p, &back) == SMSLINK_OK) {
        printf("  message from %s to %s: %s\n", back.from, back.to, (const char *)back.payload);
        if (strcmp((const char *)back.payload, text) == 0 && strcmp(back.from, "Shop") == 0)
          text_ok = 1;
      }
      smslink_cimd2_packet_free(p);
    }
  }
  uint64_t skipped = 0;
  CHECK(smslink_cimd2_decoder_skipped(decoder, &skipped));

  /* 5. Reading one parameter into a buffer that is too small gives the size. */
  char small[4];
  size_t need = 0;
  rc = smslink_cimd2_packet_get_param(submit, 33, (uint8_t *)small, sizeof small, &need);
  int sized = rc == SMSLINK_BUFFER_TOO_SMALL && need == strlen("hello from C");
  rc = smslink_cimd2_packet_get_param(submit, 999, (uint8_t *)small, sizeof small, &need);
  int missing = rc == SMSLINK_NOT_FOUND;

  printf("decoded %d packets, %d malformed, skipped %llu bytes, text round trip %s\n", packets,
         malformed, (unsigned long long)skipped, text_ok ? "ok" : "FAILED");

  smslink_cimd2_decoder_free(decoder);
  smslink_cimd2_packet_free(submit);
  smslink_cimd2_packet_free(from_message);
  free(frame);
  int ok = packets == 3 && malformed == 1 && skipped == 2 && text_ok && sized && missing;
  printf("cimd2_codec: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
