/*
 * How fast a C thread can hand messages to smslink.
 *
 * Two nodes in this process, joined over loopback TCP, rings of 65536 slots. Each
 * round, the main thread hands messages to the buffer-server node as fast as it can
 * until the ring is full (or 65536 went in); only the time spent inside those calls
 * is counted as hand-off time. Then it waits, untimed, until the peer (an IM-side
 * node whose thread acknowledges everything it receives) has processed all of them,
 * so every round starts from an empty ring.
 *
 * One untimed warm-up round first: the rings' memory (65536 slots of ~700 bytes, on
 * both sides of the hand-off queue) is touched for the first time there, and page
 * faults are a start-up cost, not a per-message one.
 *
 * Reported: the hand-off rate of smslink_node_send_text (one call per message) and
 * of smslink_node_send_batch (64 per call), and the end-to-end rate of the same
 * runs (hand-off + TCP + peer storage + acknowledgement + PROCESSED seen), which is
 * what a sustained load would get.
 *
 *   bench [ROUNDS]
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smslink.h"

#define CAPACITY 65536
#define BATCH 64

static const char PSK[] = "c bench key, 16 bytes+";

static void die(const char *what, smslink_result rc) {
  char text[256];
  size_t n = 0;
  smslink_last_error(text, sizeof text, &n);
  fprintf(stderr, "bench: %s: %s: %s\n", what, smslink_result_name(rc), text);
  exit(1);
}

#define CHECK(call)              \
  do {                           \
    smslink_result rc_ = (call); \
    if (rc_ != SMSLINK_OK)       \
      die(#call, rc_);           \
  } while (0)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of the calling thread: what the hand-off costs it, without the time it
 * spent preempted (the machine may be busy with other work). */
static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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
  CHECK(smslink_config_link_set_capacity(cfg, link, CAPACITY));
  /* Room for every status event of a full round (sent, confirmed, processed). */
  CHECK(smslink_config_set_event_capacity(cfg, 4 * CAPACITY));
  CHECK(smslink_config_set_reconnect(cfg, 10, 200));
  CHECK(smslink_node_new(cfg, &node));
  smslink_config_free(cfg);
  return node;
}

/* ---- the peer: acknowledge everything ---- */

struct peer {
  smslink_node *node;
  atomic_int stop;
};

static int ack_all(void *userdata, const smslink_event *ev) {
  struct peer *p = userdata;
  if (ev->kind != SMSLINK_EVENT_RECEIVED)
    return 0;
  smslink_result rc = smslink_node_ack(p->node, ev->link, ev->seq, SMSLINK_OUTCOME_ACCEPTED, 0);
  return rc == SMSLINK_OK ? 0 : 1; /* BUSY: this event comes back next dispatch */
}

static void *peer_thread(void *arg) {
  struct peer *p = arg;
  while (!atomic_load(&p->stop)) {
    smslink_result rc = smslink_node_dispatch(p->node, 20, ack_all, p, NULL);
    if (rc != SMSLINK_OK && rc != SMSLINK_CALLBACK_ERROR)
      die("peer dispatch", rc);
  }
  return NULL;
}

/* ---- the sender ---- */

struct sender {
  smslink_node *node;
  long processed;
  int up;
};

static int count_events(void *userdata, const smslink_event *ev) {
  struct sender *s = userdata;
  if (ev->kind == SMSLINK_EVENT_LINK_UP)
    s->up = 1;
  else if (ev->kind == SMSLINK_EVENT_STATUS && ev->state == SMSLINK_STATE_PROCESSED)
    s->processed++;
  return 0;
}

static void wait_processed(struct sender *s, long total) {
  double deadline = now_s() + 60;
  while (s->processed < total) {
    if (now_s() > deadline) {
      fprintf(stderr, "bench: only %ld of %ld processed\n", s->processed, total);
      exit(1);
    }
    CHECK(smslink_node_dispatch(s->node, 20, count_events, s, NULL));
  }
}

struct result {
  long handed;
  double call_time; /* wall-clock time inside the hand-off calls */
  double call_cpu;  /* CPU time of this thread inside them */
  double wall_time; /* the whole run, waiting for the peer included */
};

static struct result run_single(struct sender *s, int rounds, long *total) {
  struct result r = {0, 0, 0, 0};
  double wall0 = now_s();
  for (int round = 0; round < rounds; round++) {
    long k = 0;
    double c0 = thread_cpu_s();
    double t0 = now_s();
    while (k < CAPACITY) {
      smslink_result rc =
          smslink_node_send_text(s->node, "4670000001", "12345", "bench message", 0, NULL);
      if (rc == SMSLINK_FULL)
        break;
      if (rc != SMSLINK_OK)
        die("send_text", rc);
      k++;
    }
    r.call_time += now_s() - t0;
    r.call_cpu += thread_cpu_s() - c0;
    r.handed += k;
    *total += k;
    wait_processed(s, *total);
  }
  r.wall_time = now_s() - wall0;
  return r;
}

static struct result run_batch(struct sender *s, int rounds, long *total,
                               const smslink_message *batch) {
  struct result r = {0, 0, 0, 0};
  double wall0 = now_s();
  for (int round = 0; round < rounds; round++) {
    long k = 0;
    double c0 = thread_cpu_s();
    double t0 = now_s();
    while (k < CAPACITY) {
      size_t taken = 0;
      CHECK(smslink_node_send_batch(s->node, 0, batch, BATCH, &taken, NULL));
      k += (long)taken;
      if (taken < BATCH)
        break;
    }
    r.call_time += now_s() - t0;
    r.call_cpu += thread_cpu_s() - c0;
    r.handed += k;
    *total += k;
    wait_processed(s, *total);
  }
  r.wall_time = now_s() - wall0;
  return r;
}

static void report(const char *what, struct result r) {
  printf("bench: %-21s hand-off %5.2f M msgs/s wall, %5.2f M msgs/s per CPU-second "
         "(%ld msgs, %.3f s wall, %.3f s CPU in the calls); end-to-end %4.2f M msgs/s\n",
         what, (double)r.handed / r.call_time / 1e6, (double)r.handed / r.call_cpu / 1e6,
         r.handed, r.call_time, r.call_cpu, (double)r.handed / r.wall_time / 1e6);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 16;
  if (rounds <= 0)
    return 2;
  struct peer peer;
  peer.node = start_node("im", "127.0.0.1:0", 1);
  atomic_init(&peer.stop, 0);
  char addr[64];
  size_t len = 0;
  CHECK(smslink_node_local_addr(peer.node, 0, addr, sizeof addr, &len));
  pthread_t tid;
  if (pthread_create(&tid, NULL, peer_thread, &peer) != 0)
    return 1;

  struct sender s = {0};
  s.node = start_node("bs", addr, 0);
  double deadline = now_s() + 10;
  while (!s.up && now_s() < deadline)
    CHECK(smslink_node_dispatch(s.node, 20, count_events, &s, NULL));
  if (!s.up) {
    fprintf(stderr, "bench: link did not come up\n");
    return 1;
  }

  static smslink_message batch[BATCH];
  for (int i = 0; i < BATCH; i++) {
    memset(&batch[i], 0, sizeof batch[i]);
    strcpy(batch[i].from, "4670000001");
    strcpy(batch[i].to, "12345");
    batch[i].coding = SMSLINK_CODING_TEXT;
    batch[i].payload_len = (uint32_t)strlen("bench message");
    memcpy(batch[i].payload, "bench message", batch[i].payload_len);
  }

  long total = 0;
  run_single(&s, 1, &total); /* warm-up, untimed */
  printf("bench: %d rounds of up to %d messages per mode, ring capacity %d, one C thread\n",
         rounds, CAPACITY, CAPACITY);
  report("send_text (1/call)", run_single(&s, rounds, &total));
  report("send_batch (64/call)", run_batch(&s, rounds, &total, batch));

  atomic_store(&peer.stop, 1);
  pthread_join(tid, NULL);
  smslink_link_stats st;
  CHECK(smslink_node_link_stats(s.node, 0, &st));
  printf("bench: link tx_last_processed %llu, data frames sent %llu, resent %llu\n",
         (unsigned long long)st.tx_last_processed, (unsigned long long)st.data_sent,
         (unsigned long long)st.data_resent);
  CHECK(smslink_node_free(s.node));
  CHECK(smslink_node_free(peer.node));
  return st.tx_last_processed == (uint64_t)total ? 0 : 1;
}
