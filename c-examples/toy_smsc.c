/*
 * A toy SMSC stack that embeds the smslink buffer server (no CIMD2: the stack
 * itself is the SMSC side) and exchanges messages with an IM-side endpoint.
 *
 *   toy_smsc [COUNT]           runs the IM side too, in a second thread of this
 *                              program (a second node joined over loopback TCP,
 *                              rings of 16 slots so that both sides meet a full one)
 *   toy_smsc COUNT HOST:PORT   dials an IM-side endpoint elsewhere (this side's
 *                              link is "bs", the peer must be "im", pre-shared
 *                              key "toy key, 16 bytes+", 1024 slots), which must answer
 *                              each MO "mo N" with one MT "re: mo N"
 *
 * The stack hands each mobile-originated (MO) message to smslink and gets "stored"
 * (a sequence number) or SMSLINK_FULL back at once. Mobile-terminated (MT) messages
 * arrive through a callback; the stack "delivers" each one to the handset and, as
 * a network's delivery report comes back later, reports the outcome with
 * smslink_node_ack one dispatch round later (handsets ending in 9 are unknown:
 * rejected with code 13).
 *
 * The IM side acknowledges every MO and answers it with an MT "re: <text>". When
 * its ring toward the stack is full it blocks in smslink_node_wait_for_room until
 * the stack has processed an MT (its thread does nothing else), where the stack's
 * own loop, which must keep dispatching, goes back to dispatch on SMSLINK_FULL.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smslink.h"

static const char PSK[] = "toy key, 16 bytes+";
/* Ring slots when both sides run here: small, so that both meet a full ring. */
static const uint32_t LOCAL_CAPACITY = 16;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, smslink_result rc) {
  char text[256];
  size_t n = 0;
  smslink_last_error(text, sizeof text, &n);
  fprintf(stderr, "toy_smsc: %s: %s: %s\n", what, smslink_result_name(rc), text);
  exit(1);
}

#define CHECK(call)                   \
  do {                                \
    smslink_result rc_ = (call);      \
    if (rc_ != SMSLINK_OK)            \
      die(#call, rc_);                \
  } while (0)

/* ---- the IM side (what an IM server would run) ---- */

struct im_side {
  smslink_node *node;
  long expected;
  long mo_received;
  long mt_accepted;
  long mt_rejected;
  long room_waits;
  int mo_in_order;
  double deadline;
};

static void *im_thread(void *arg) {
  struct im_side *im = arg;
  im->mo_in_order = 1;
  while (im->mt_accepted + im->mt_rejected < im->expected && now_s() < im->deadline) {
    smslink_event ev;
    smslink_result rc = smslink_node_wait_event(im->node, 50, &ev);
    if (rc == SMSLINK_EMPTY)
      continue;
    if (rc != SMSLINK_OK)
      die("im wait_event", rc);
    if (ev.kind == SMSLINK_EVENT_RECEIVED) {
      char want[32];
      snprintf(want, sizeof want, "mo %ld", im->mo_received);
      if (strcmp((const char *)ev.message.payload, want) != 0)
        im->mo_in_order = 0;
      im->mo_received++;
      /* Stored on our side: tell the buffer server, then answer the handset. */
      CHECK(smslink_node_ack(im->node, ev.link, ev.seq, SMSLINK_OUTCOME_ACCEPTED, 0));
      char reply[SMSLINK_PAYLOAD_SIZE + 8]; /* the library refuses more than 640 bytes */
      snprintf(reply, sizeof reply, "re: %s", (const char *)ev.message.payload);
      for (;;) {
        rc = smslink_node_send_text(im->node, ev.message.to, ev.message.from, reply,
                                    (uint64_t)im->mo_received, NULL);
        if (rc != SMSLINK_FULL)
          break;
        /* Ring full: the handset side has not caught up. Sleep until it has
           processed one (the node wakes this thread), then send again. */
        im->room_waits++;
        size_t room = 0;
        int left_ms = (int)((im->deadline - now_s()) * 1000);
        rc = smslink_node_wait_for_room(im->node, ev.link, 1, left_ms > 0 ? left_ms : 0, &room);
        if (rc != SMSLINK_OK)
          die("im wait_for_room", rc);
      }
      if (rc != SMSLINK_OK)
        die("im send_text", rc);
    } else if (ev.kind == SMSLINK_EVENT_STATUS && ev.state == SMSLINK_STATE_PROCESSED) {
      if (ev.outcome == SMSLINK_OUTCOME_ACCEPTED)
        im->mt_accepted++;
      else
        im->mt_rejected++;
    }
  }
  return NULL;
}

/* ---- the SMSC stack with its embedded buffer server ---- */

/* An MT delivered to a handset whose outcome is not reported yet. */
struct report {
  uint32_t link;
  uint64_t seq;
  int unknown;
};

/* At most a ring's worth of MT is ever unacknowledged (1024 slots at most here). */
#define MAX_REPORTS 1024

struct stack {
  smslink_node *node;
  struct report reports[MAX_REPORTS];
  size_t n_reports; /* collected by the callback */
  size_t n_due;     /* the first n_due are reported by the next report_outcomes */
  long count;
  long mo_accepted;
  long mo_rejected;
  long mt_delivered;
  long mt_unknown;
  int mt_in_order;
};

/* Called on the stack's own thread by smslink_node_dispatch. */
static int on_event(void *userdata, const smslink_event *ev) {
  struct stack *s = userdata;
  switch (ev->kind) {
  case SMSLINK_EVENT_LINK_UP:
    printf("toy_smsc: link up, peer %s\n", ev->detail);
    break;
  case SMSLINK_EVENT_LINK_DOWN:
    printf("toy_smsc: link down: %s\n", ev->detail);
    break;
  case SMSLINK_EVENT_RECEIVED: {
    /* An MT for a handset: "deliver" it; its outcome is reported later. */
    if (s->n_reports == MAX_REPORTS)
      return 1; /* stops dispatch; this event comes back on the next one */
    size_t len = strlen(ev->message.to);
    int unknown = len > 0 && ev->message.to[len - 1] == '9';
    s->reports[s->n_reports++] = (struct report){ev->link, ev->seq, unknown};
    char want[48];
    snprintf(want, sizeof want, "re: mo %ld", s->mt_delivered + s->mt_unknown);
    if (strcmp((const char *)ev->message.payload, want) != 0)
      s->mt_in_order = 0;
    if (unknown)
      s->mt_unknown++;
    else
      s->mt_delivered++;
    return 0;
  }
  case SMSLINK_EVENT_STATUS:
    if (ev->state == SMSLINK_STATE_PROCESSED) {
      if (ev->outcome == SMSLINK_OUTCOME_ACCEPTED)
        s->mo_accepted++;
      else
        s->mo_rejected++;
    }
    break;
  default:
    break;
  }
  return 0;
}

/* Acknowledge the outcomes that are due; the rest are due next time. */
static void report_outcomes(struct stack *s) {
  size_t done = 0;
  for (; done < s->n_due; done++) {
    const struct report *r = &s->reports[done];
    smslink_result rc =
        r->unknown ? smslink_node_ack(s->node, r->link, r->seq, SMSLINK_OUTCOME_REJECTED, 13)
                   : smslink_node_ack(s->node, r->link, r->seq, SMSLINK_OUTCOME_ACCEPTED, 0);
    if (rc == SMSLINK_BUSY)
      break; /* too many acknowledgements queued: the rest go next time */
    if (rc != SMSLINK_OK)
      die("ack", rc);
  }
  s->n_reports -= done;
  memmove(s->reports, s->reports + done, s->n_reports * sizeof s->reports[0]);
  s->n_due = s->n_reports;
}

static smslink_node *start_node(const char *name, const char *peer, const char *addr,
                                int listen, uint32_t capacity) {
  smslink_config *cfg = NULL;
  uint32_t link = 0;
  smslink_node *node = NULL;
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
  CHECK(smslink_config_link_set_expected_peer(cfg, link, peer));
  CHECK(smslink_config_link_set_capacity(cfg, link, capacity));
  CHECK(smslink_config_link_set_default(cfg, link));
  CHECK(smslink_config_set_reconnect(cfg, 20, 500));
  CHECK(smslink_node_new(cfg, &node));
  smslink_config_free(cfg);
  return node;
}

int main(int argc, char **argv) {
  long count = argc > 1 ? atol(argv[1]) : 1000;
  const char *remote = argc > 2 ? argv[2] : NULL;
  if (count <= 0) {
    fprintf(stderr, "usage: toy_smsc [COUNT [IM_HOST:PORT]]\n");
    return 2;
  }
  if (strcmp(smslink_version(), SMSLINK_VERSION) != 0) {
    fprintf(stderr, "toy_smsc: header %s, library %s\n", SMSLINK_VERSION, smslink_version());
    return 1;
  }
  double deadline = now_s() + 30.0;

  struct im_side im = {0};
  pthread_t im_tid;
  char im_addr[64];
  if (remote == NULL) {
    im.node = start_node("im", "bs", "127.0.0.1:0", 1, LOCAL_CAPACITY);
    uint16_t port = 0;
    CHECK(smslink_node_local_port(im.node, 0, &port));
    snprintf(im_addr, sizeof im_addr, "127.0.0.1:%u", (unsigned)port);
    im.expected = count;
    im.deadline = deadline;
    if (pthread_create(&im_tid, NULL, im_thread, &im) != 0) {
      fprintf(stderr, "toy_smsc: pthread_create failed\n");
      return 1;
    }
  } else {
    snprintf(im_addr, sizeof im_addr, "%s", remote);
  }

  struct stack s = {0};
  s.mt_in_order = 1;
  s.count = count;
  s.node = start_node("bs", "im", im_addr, 0, remote == NULL ? LOCAL_CAPACITY : 1024);

  long next_mo = 0;
  long full_answers = 0;
  while (now_s() < deadline) {
    /* Hand MO messages over until done or the ring is full. */
    while (next_mo < count) {
      char from[SMSLINK_ADDRESS_SIZE];
      char text[32];
      snprintf(from, sizeof from, "4670%06d", (int)(next_mo % 1000000));
      snprintf(text, sizeof text, "mo %ld", next_mo);
      smslink_receipt receipt;
      smslink_result rc = smslink_node_send_text(s.node, from, "12345", text,
                                                 (uint64_t)next_mo, &receipt);
      if (rc == SMSLINK_FULL) {
        full_answers++;
        break;
      }
      if (rc != SMSLINK_OK)
        die("send_text", rc);
      next_mo++;
    }
    /* The IM side answers every MO with one MT, wherever it runs. */
    int done = s.mo_accepted + s.mo_rejected == count && s.mt_delivered + s.mt_unknown == count;
    if (done)
      break;
    size_t handled = 0;
    smslink_result rc = smslink_node_dispatch(s.node, 20, on_event, &s, &handled);
    if (rc != SMSLINK_OK && rc != SMSLINK_CALLBACK_ERROR)
      die("dispatch", rc);
    report_outcomes(&s);
  }
  /* The last delivery reports. */
  while (s.n_reports > 0 && now_s() < deadline) {
    s.n_due = s.n_reports;
    report_outcomes(&s);
    if (s.n_reports > 0)
      CHECK(smslink_node_dispatch(s.node, 20, on_event, &s, NULL));
  }

  smslink_link_stats stats;
  CHECK(smslink_node_link_stats(s.node, 0, &stats));
  printf("toy_smsc: mo sent %ld, processed %ld (accepted %ld, rejected %ld), full answers %ld\n",
         next_mo, s.mo_accepted + s.mo_rejected, s.mo_accepted, s.mo_rejected, full_answers);
  printf("toy_smsc: mt received %ld (delivered %ld, unknown handset %ld), in order %s\n",
         s.mt_delivered + s.mt_unknown, s.mt_delivered, s.mt_unknown,
         s.mt_in_order ? "yes" : "no");
  printf("toy_smsc: link %s tx cursors retrieved %llu sent %llu confirmed %llu processed %llu\n",
         stats.name, (unsigned long long)stats.tx_last_retrieved,
         (unsigned long long)stats.tx_last_sent, (unsigned long long)stats.tx_last_confirmed,
         (unsigned long long)stats.tx_last_processed);

  int ok = s.mo_accepted == count && s.mt_in_order && s.mt_delivered + s.mt_unknown == count;
  if (remote == NULL) {
    pthread_join(im_tid, NULL);
    printf("im: mo received %ld, in order %s; mt processed %ld (accepted %ld, rejected %ld)\n",
           im.mo_received, im.mo_in_order ? "yes" : "no", im.mt_accepted + im.mt_rejected,
           im.mt_accepted, im.mt_rejected);
    printf("im: waited for room %ld times\n", im.room_waits);
    ok = ok && im.mo_received == count &&
         im.mo_in_order && im.mt_accepted == s.mt_delivered && im.mt_rejected == s.mt_unknown;
  }
  bool drained = false;
  CHECK(smslink_node_shutdown(s.node, 1000, &drained));
  if (remote == NULL)
    CHECK(smslink_node_free(im.node));
  printf("toy_smsc: %s (drained %s)\n", ok ? "ok" : "FAILED", drained ? "yes" : "no");
  return ok ? 0 : 1;
}
