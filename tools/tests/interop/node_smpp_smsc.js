#!/usr/bin/env node
// A small SMSC on node-smpp (the npm package `smpp`), for interoperability tests
// of smslink's SMPP client (tools/tests/interop_node_smpp.rs).
//
// Usage: node node_smpp_smsc.js PORT MO_COUNT
//   PORT 0 picks a free port; the port is printed alone on the first stdout line.
//   Binds (transceiver, transmitter, receiver) are accepted for system_id
//   "smslink" / password "secret" and refused with ESME_RINVPASWD otherwise.
//   Each submit_sm is accepted with a message_id in hex (8 digits, leading zeros);
//   its delivery receipt then goes to the latest receiving bind with the id in
//   decimal in the text (and, for every second one, the hex id in the
//   receipted_message_id TLV). Once a receiving bind is up, MO_COUNT deliver_sm
//   ("mo #1", "mo #2", ...) are sent. Everything is logged on stdout, one JSON
//   object per line.

'use strict';

const smpp = require('smpp');

const port = Number(process.argv[2] || 0);
const moCount = Number(process.argv[3] || 0);
const SYSTEM_ID = 'smslink';
const PASSWORD = 'secret';

let nextId = 0x00b8be10;
let receiver = null;
let moSent = false;
const pendingReceipts = [];

function log(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function yymmddhhmm(date) {
  const two = (n) => String(n).padStart(2, '0');
  return (
    two(date.getUTCFullYear() % 100) +
    two(date.getUTCMonth() + 1) +
    two(date.getUTCDate()) +
    two(date.getUTCHours()) +
    two(date.getUTCMinutes())
  );
}

function sendReceipt(receipt) {
  const { submit, hexId, decimalId, n } = receipt;
  const date = yymmddhhmm(new Date());
  const text =
    `id:${decimalId} sub:001 dlvrd:001 submit date:${date} done date:${date} ` +
    `stat:DELIVRD err:000 text:${submit.text.slice(0, 20)}`;
  const pdu = {
    source_addr_ton: submit.dest_ton,
    source_addr_npi: submit.dest_npi,
    source_addr: submit.to,
    dest_addr_ton: submit.source_ton,
    dest_addr_npi: submit.source_npi,
    destination_addr: submit.from,
    esm_class: smpp.ESM_CLASS.MC_DELIVERY_RECEIPT,
    data_coding: 1,
    short_message: Buffer.from(text, 'ascii'),
  };
  if (n % 2 === 0) {
    pdu.receipted_message_id = hexId;
    pdu.message_state = smpp.MESSAGE_STATE.DELIVERED;
  }
  receiver.deliver_sm(pdu, (resp) => {
    log({ event: 'receipt_resp', id: decimalId, status: resp.command_status });
  });
  log({ event: 'receipt', id: decimalId, hex: hexId, tlv: n % 2 === 0 });
}

function sendMo(session) {
  for (let i = 1; i <= moCount; i++) {
    const text = `mo #${i}`;
    session.deliver_sm(
      {
        source_addr_ton: 1,
        source_addr_npi: 1,
        source_addr: '4670000' + i,
        dest_addr_ton: 0,
        dest_addr_npi: 1,
        destination_addr: '12345',
        data_coding: 1,
        short_message: Buffer.from(text, 'ascii'),
      },
      (resp) => {
        log({ event: 'mo_resp', text, status: resp.command_status });
      },
    );
  }
  log({ event: 'mo_sent', count: moCount });
}

function onBind(session, pdu, role) {
  const ok = pdu.system_id === SYSTEM_ID && pdu.password === PASSWORD;
  if (!ok) {
    log({ event: 'bind_refused', role, system_id: pdu.system_id });
    session.send(pdu.response({ command_status: smpp.ESME_RINVPASWD }));
    return;
  }
  session.send(pdu.response({ system_id: 'nodesmsc' }));
  log({
    event: 'bind',
    role,
    system_id: pdu.system_id,
    system_type: pdu.system_type,
    interface_version: pdu.interface_version,
  });
  if (role !== 'transmitter') {
    receiver = session;
    while (pendingReceipts.length > 0) {
      sendReceipt(pendingReceipts.shift());
    }
    if (!moSent) {
      moSent = true;
      sendMo(session);
    }
  }
}

const server = smpp.createServer((session) => {
  session.on('bind_transceiver', (pdu) => onBind(session, pdu, 'transceiver'));
  session.on('bind_transmitter', (pdu) => onBind(session, pdu, 'transmitter'));
  session.on('bind_receiver', (pdu) => onBind(session, pdu, 'receiver'));
  session.on('submit_sm', (pdu) => {
    const n = nextId - 0x00b8be10;
    const id = nextId++;
    const hexId = id.toString(16).toUpperCase().padStart(8, '0');
    const message = pdu.short_message && pdu.short_message.message;
    const text = Buffer.isBuffer(message) ? message.toString('latin1') : String(message);
    session.send(pdu.response({ message_id: hexId }));
    const submit = {
      from: pdu.source_addr,
      source_ton: pdu.source_addr_ton,
      source_npi: pdu.source_addr_npi,
      to: pdu.destination_addr,
      dest_ton: pdu.dest_addr_ton,
      dest_npi: pdu.dest_addr_npi,
      text,
    };
    log({
      event: 'submit',
      seq: pdu.sequence_number,
      to: submit.to,
      dest_ton: submit.dest_ton,
      from: submit.from,
      text,
      data_coding: pdu.data_coding,
      registered_delivery: pdu.registered_delivery,
      message_id: hexId,
    });
    const receipt = { submit, hexId, decimalId: String(id), n };
    if (pdu.registered_delivery & 1) {
      if (receiver) {
        sendReceipt(receipt);
      } else {
        pendingReceipts.push(receipt);
      }
    }
  });
  session.on('enquire_link', (pdu) => {
    session.send(pdu.response());
    log({ event: 'enquire_link' });
  });
  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    log({ event: 'unbind' });
    session.close();
  });
  session.on('close', () => {
    if (receiver === session) {
      receiver = null;
    }
    log({ event: 'close' });
  });
  session.on('error', (e) => log({ event: 'error', error: String(e) }));
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(server.address().port + '\n');
});
