/*
 * smslink inside a C stack's own poll() loop: no extra thread in the application.
 *
 * One thread owns both ends here (a buffer server node and an IM-side node joined
 * over loopback TCP) and sleeps in poll() on the two nodes' event descriptors. A
 * timer (the poll timeout) stands for the stack's own work: every tick it hands a
 * burst of MO messages to the buffer server. When a descriptor turns readable:
 * clear it, then take events until SMSLINK_EMPTY. The runtime's log lines go to
 * the stack's own logging through a log callback (here: counted and printed).
 * Every tenth message is a long one (a concatenated SMS of several parts): its
 * event carries the length only, and the payload is copied out of the node with
 * smslink_node_received_payload before the acknowledgement.
 *
 *   poll_loop [COUNT]
 */
#define _POSIX_C_SOURCE 200809L

#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smslink.h"

static const char PSK[] = "poll loop key, 16 bytes+";

static void die(const char *what, smslink_result rc) {
  char text[256];
  size_t n = 0;
  smslink_last_error(text, sizeof text, &n);
  fprintf(stderr, "poll_loop: %s: %s: %s\n", what, smslink_result_name(rc), text);
  exit(1);
}

#define CHECK(call)              \
  do {                           \
    smslink_result rc_ = (call); \
    if (rc_ != SMSLINK_OK)       \
      die(#call, rc_);           \
  } while (0)

/* Runs on the nodes' threads: thread-safe, quick, no smslink calls. */
static atomic_int link_ups;

static void on_log(void *userdata, smslink_log_level level, const char *target,
                   const char *message, const smslink_log_field *fields, size_t field_count) {
  (void)userdata;
  const char *event = "";
  for (size_t i = 0; i < field_count; i++)
    if (strcmp(fields[i].key, "event") == 0)
      event = fields[i].value; /* valid only during this call, like every argument */
  if (strcmp(target, "link") == 0 && strcmp(event, "up") == 0)
    atomic_fetch_add(&link_ups, 1);
  printf("poll_loop: log %d smslink.%s %s\n", (int)level, target, message);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static smslink_node *start_node(const char *name, const char *addr, int listen) {
  smslink_config *cfg = NULL;
  smslink_node *node = NULL;
  uint32_t link = 0;
  CHECK(smslink_config_new(&cfg));
  if (listen)
    CHECK(smslink_config_add_link_listen(cfg, name, (const uint8_t *)PSK, strlen(PSK), addr,
                                         &link));
  else
    CHECK(smslink_config_add_link_dial(cfg, name, (const uint8_t *)PSK, strlen(PSK), addr,
                                       &link));
  /* Both ends on one host: no TLS. Across a network, give each link its
     certificate, key and the peer's fingerprint (or a CA file) instead:
     smslink_config_link_set_tls(cfg, link, "site.crt", "site.key", NULL, "<64 hex>"). */
  CHECK(smslink_config_link_set_insecure_plaintext(cfg, link));
  CHECK(smslink_config_link_set_capacity(cfg, link, 128));
  CHECK(smslink_config_set_reconnect(cfg, 20, 500));
  CHECK(smslink_node_new(cfg, &node));
  smslink_config_free(cfg);
  return node;
}

int main(int argc, char **argv) {
  long count = argc > 1 ? atol(argv[1]) : 1000;
  if (count <= 0)
    return 2;
  CHECK(smslink_log_set_callback(on_log, NULL, SMSLINK_LOG_INFO));
  smslink_node *im = start_node("im", "127.0.0.1:0", 1);
  char addr[64];
  size_t addr_len = 0;
  CHECK(smslink_node_local_addr(im, 0, addr, sizeof addr, &addr_len));
  smslink_node *bs = start_node("bs", addr, 0);

  struct pollfd fds[2];
  CHECK(smslink_node_event_fd(bs, &fds[0].fd));
  CHECK(smslink_node_event_fd(im, &fds[1].fd));
  fds[0].events = fds[1].events = POLLIN;
  smslink_node *nodes[2] = {bs, im};

  /* A long text: SMSLINK_MAX_PAYLOAD does not bound what smslink_node_send_text takes. */
  static char long_text[2000];
  memset(long_text, 'x', sizeof long_text - 1);
  memcpy(long_text, "long mo: ", 9);
  uint32_t long_parts = 0;
  CHECK(smslink_sms_parts((const uint8_t *)long_text, strlen(long_text), SMSLINK_CODING_TEXT,
                          &long_parts));
  static uint8_t long_copy[sizeof long_text];
  long long_sent = 0, long_received = 0;

  long sent = 0, received = 0, processed = 0, wakeups = 0, ticks = 0, full = 0;
  double deadline = now_s() + 30.0;
  while (processed < count && now_s() < deadline) {
    int ready = poll(fds, 2, 1 /* ms: the stack's own timer */);
    if (ready < 0) {
      perror("poll");
      return 1;
    }
    if (ready == 0) {
      /* Timer tick: the stack has a burst of MO messages for smslink. */
      ticks++;
      for (int i = 0; i < 50 && sent < count; i++) {
        char text[32];
        snprintf(text, sizeof text, "mo %ld", sent);
        int is_long = sent % 10 == 9;
        smslink_result rc = smslink_node_send_text(bs, "4670000001", "12345",
                                                   is_long ? long_text : text, (uint64_t)sent, NULL);
        if (rc == SMSLINK_FULL) {
          full++;
          break; /* try again next tick: nothing was stored */
        }
        if (rc != SMSLINK_OK)
          die("send_text", rc);
        sent++;
        long_sent += is_long;
      }
      continue;
    }
    for (int i = 0; i < 2; i++) {
      if (!(fds[i].revents & POLLIN))
        continue;
      wakeups++;
      /* Clear first: an event arriving while we drain re-arms the descriptor. */
      CHECK(smslink_node_clear_event_fd(nodes[i]));
      smslink_event ev;
      smslink_result rc;
      while ((rc = smslink_node_poll_event(nodes[i], &ev)) == SMSLINK_OK) {
        if (ev.kind == SMSLINK_EVENT_RECEIVED && nodes[i] == im) {
          received++;
          if (ev.payload_len > SMSLINK_MAX_PAYLOAD) {
            /* Too long for the event: copy it out before the acknowledgement frees it. */
            size_t n = 0;
            CHECK(smslink_node_received_payload(im, ev.link, ev.seq, long_copy, sizeof long_copy, &n));
            if (n == strlen(long_text) && memcmp(long_copy, long_text, n) == 0 && !ev.incomplete)
              long_received++;
          }
          CHECK(smslink_node_ack(im, ev.link, ev.seq, SMSLINK_OUTCOME_ACCEPTED, 0));
        } else if (ev.kind == SMSLINK_EVENT_STATUS && nodes[i] == bs &&
                   ev.state == SMSLINK_STATE_PROCESSED) {
          processed++;
        }
      }
      if (rc != SMSLINK_EMPTY)
        die("poll_event", rc);
    }
  }

  smslink_link_stats st;
  CHECK(smslink_node_link_stats(bs, 0, &st));
  printf("poll_loop: listening on %s\n", addr);
  printf("poll_loop: sent %ld, im received %ld, processed %ld, full answers %ld, "
         "wakeups %ld, ticks %ld\n",
         sent, received, processed, full, wakeups, ticks);
  printf("poll_loop: long messages sent %ld, received whole %ld, %u SMS each\n", long_sent,
         long_received, (unsigned)long_parts);
  printf("poll_loop: bs tx_last_processed %llu, frames out %llu, bytes out %llu\n",
         (unsigned long long)st.tx_last_processed, (unsigned long long)st.frames_out,
         (unsigned long long)st.bytes_out);
  CHECK(smslink_node_free(bs));
  CHECK(smslink_node_free(im));
  CHECK(smslink_log_set_callback(NULL, NULL, SMSLINK_LOG_INFO));
  /* Both ends logged their link coming up before any message went through. */
  printf("poll_loop: link-up log lines %d\n", atomic_load(&link_ups));
  int ok = atomic_load(&link_ups) >= 2 && sent == count && received == count && processed == count &&
           st.tx_last_processed == (uint64_t)count && long_received == long_sent && long_parts == 14;
  printf("poll_loop: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
