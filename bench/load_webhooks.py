"""Paid webhooks from many connections at once, at rising rates: the highest rate Kiosque holds.

The real parts, each in a process of its own: Kiosque under gunicorn (gunicorn.conf.py) on
PostgreSQL, one `flask worker`, the sandbox router (RouterOS API over TCP) and the sandbox
providers (HTTP, connections kept alive) and a mail server (SMTP, aiosmtpd) for the owners' sale
emails, all started by bench/sandbox_servers.py. This process plays FedaPay's
notifier: `--senders` threads, each with its own connection to Kiosque, send the signed
`transaction.approved` webhooks at the offered rate; Kiosque then asks the sandbox provider's
status API, makes the hotspot user on the sandbox router, logs the client in and emails the owner.

Each step offers one rate for `--hold` seconds. Before it, untimed, its orders are bought through
the buy form and their payments approved at the sandbox provider with notifications off (this
process sends them instead). The worker's poll of quiet pending orders is pushed past the run
(PORTAL_WORKER_POLL_AFTER) so that no order is found paid before its webhook. After the step, up
to `--drain` seconds for the last tickets and their emails. Per step:

- webhook → ticket from Kiosque's own records (the webhook's received_at, the ticket's
  created_on_router_at), and from the sender's clock (the request leaving, to the same
  created_on_router_at), which also counts time queued in gunicorn before Kiosque's code runs;
- tickets/s achieved, lost (approved, no ticket after the drain), duplicated (more than one
  hotspot user on the router for one order, read over the RouterOS API), and tickets whose
  owner had no sale email by the end of the drain;
- CPU per process over the step, from /proc/<pid>/stat (utime + stime), in % of one core: the
  gunicorn workers, the worker, PostgreSQL's backends for this database, the sandboxes and this
  process; with the whole machine's busy share, since other work may share it.

A step is held when p95 from both clocks is <= --p95-limit ms, nothing is lost or duplicated,
every webhook was answered 2xx, and tickets/s reach 95 % of the offered rate. The ramp stops
after the first step not held (--all runs every rate).

    .venv/bin/python bench/load_webhooks.py [--rates 20 40 60 80 100 120] [--hold 60]
        [--senders 32] [--new-connections] [--router-latency 0] [--provider-latency 0]
        [--web-workers N] [--threads N] [--background-nice 10]
        [--profile SECONDS] [--database postgresql+psycopg://kiosque:kiosque@127.0.0.1/kiosque_bench]

The worker runs at the CPU priority docs/deployment.md gives it (nice 10, below the web's: the
paid path first, the sale emails and sweeps behind), and so does the mail server, which stands
for a relay on another machine; --background-nice 0 runs both at the web's priority.

Without --web-workers and --threads, gunicorn.conf.py decides (WEB_CONCURRENCY and
GUNICORN_THREADS from the environment count too). --profile samples the web workers with py-spy
(`pip install py-spy`) during each step and prints the functions most seen: it costs CPU, so
keep its figures apart from the unprofiled ones.

The database is emptied first: give it one made for the benchmark.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import runpy
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from sandbox_servers import client_ip, client_mac
from staging import fedapay_headers, percentile

from portal import create_app
from portal.extensions import db
from portal.models import Order, OrderStatus, Ticket, WebhookEvent
from portal.routeros.client import RouterAddress, RouterClient
from portal.services.routers import router_address
from sandbox import ROUTER_EGRESS, demo

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
FEDAPAY = demo.CREDENTIALS["fedapay"]
HTTP_TIMEOUT = 30.0  # seconds, for every request this benchmark makes
START_TIMEOUT = 30.0  # seconds for a server to come up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------------------------------


def start_sandbox(*args: str) -> tuple[subprocess.Popen, dict]:
    """Start bench/sandbox_servers.py with `args`; returns the process and where it listens."""
    process = subprocess.Popen([sys.executable, str(BENCH / "sandbox_servers.py"), *args], cwd=ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        raise SystemExit(f"sandbox {args[0]} did not start")
    return process, json.loads(line)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        if process.stdin:
            process.stdin.close()  # the sandbox servers stop at EOF
        else:
            process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def connections_per_process(pids: list[int], port: int) -> list[int]:
    """How many established TCP connections to `port` each process holds (gunicorn's workers)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # ESTABLISHED, local port
                inodes.add(fields[9])
    counts = []
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            held += target.startswith("socket:[") and target[8:-1] in inodes
        counts.append(held)
    return counts


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except OSError:
            pass
    return found


def postgres_backends(database: str) -> tuple[list[int], list[int]]:
    """PostgreSQL processes serving `database`, and the server's other processes (shared)."""
    ours, others = [], []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: "):
            (ours if f" {database} " in title else others).append(int(entry.name))
        elif title.startswith("/usr/lib/postgresql/") and "/bin/postgres" in title.split(" ")[0]:
            others.append(int(entry.name))
    return ours, others


def ticks(pid: int) -> tuple[tuple[int, int], int] | None:
    """((utime, stime), starttime) of a process, in clock ticks; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]), int(fields[12])), int(fields[19])


def machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


class CpuMeter:
    """CPU use of each group of processes between start() and stop(), sampled every half second."""

    def __init__(self, groups) -> None:
        self.groups = groups  # callable: {label: [pids]}, asked at every sample
        self._first: dict[int, tuple[int, int]] = {}
        self._last: dict[int, tuple[int, int]] = {}
        self._label: dict[int, str] = {}
        self._stop = threading.Event()

    def start(self) -> None:
        self._started = time.monotonic()
        self._machine = machine_ticks()
        self._boot_ticks = float(Path("/proc/uptime").read_text().split()[0]) * CLOCK_TICKS
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def _sample(self) -> None:
        for label, pids in self.groups().items():
            for pid in pids:
                reading = ticks(pid)
                if reading is None:
                    continue
                used, born = reading
                if pid not in self._first:
                    # A process born during the step counts from zero.
                    self._first[pid] = (0, 0) if born > self._boot_ticks else used
                self._last[pid] = used
                self._label[pid] = label

    def stop(self) -> tuple[dict[str, float], float]:
        """{label: % of one core} and the whole machine's busy share in % of all its cores.

        Also sets `busiest`: {label: the share of its busiest process}, and `system`: {label: the
        part of its share spent in the kernel}.
        """
        self._stop.set()
        self._thread.join(5)
        self._sample()
        seconds = time.monotonic() - self._started
        used: Counter[str] = Counter()
        self.busiest: dict[str, float] = {}
        self.system: Counter[str] = Counter()
        for pid, label in self._label.items():
            (user, system), (user0, system0) = self._last[pid], self._first[pid]
            share = 100 * (user + system - user0 - system0) / CLOCK_TICKS / seconds
            self.system[label] += 100 * (system - system0) / CLOCK_TICKS / seconds
            used[label] += share
            self.busiest[label] = max(self.busiest.get(label, 0.0), share)
        busy, total = machine_ticks()
        machine = 100 * (busy - self._machine[0]) / max(1, total - self._machine[1])
        return dict(used), machine


# -- webhooks --------------------------------------------------------------------------------------


@dataclass
class Payment:
    order_id: int
    code: str
    ref: str
    event: bytes  # the notification's JSON body, signed when it leaves


@dataclass
class Sent:
    payment: Payment
    due: float  # wall-clock seconds
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0


class Sender(threading.Thread):
    """One provider connection: takes due webhooks from the queue, sends each, waits for the answer."""

    def __init__(self, host: str, port: int, path: str, jobs: queue.Queue, fresh: bool, deadline: float) -> None:
        super().__init__(daemon=True)
        self.host, self.port, self.path, self.jobs, self.fresh = host, port, path, jobs, fresh
        self.deadline = deadline  # monotonic: the sender gives up after it
        self.connection: http.client.HTTPConnection | None = None

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            try:
                job = self.jobs.get(timeout=1)
            except queue.Empty:
                continue
            if job is None:
                break
            self.send(job)
        if self.connection is not None:
            self.connection.close()

    def send(self, job: Sent) -> None:
        for attempt in range(2):  # once more on a fresh connection if a kept-alive one was closed
            reused = self.connection is not None
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)
            headers = fedapay_headers(job.payment.event)
            if self.fresh:
                headers["Connection"] = "close"
            job.sent = time.time()
            try:
                self.connection.request("POST", self.path, body=job.payment.event, headers=headers)
                answer = self.connection.getresponse()
                answer.read()
            except (OSError, http.client.HTTPException):
                self.connection.close()
                self.connection = None
                if reused:
                    continue
                job.status = -1
                return
            job.answered, job.status = time.time(), answer.status
            if self.fresh or answer.will_close:
                self.connection.close()
                self.connection = None
            return


def offer(payments: list[Payment], rate: float, senders: int, url: str, fresh: bool, hold_limit: float) -> list[Sent]:
    """Send each webhook at its due time (an open loop: rate / s) through `senders` connections."""
    host, port = url.split("://", 1)[1].split("/", 1)[0].split(":")
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    jobs: queue.Queue = queue.Queue()
    deadline = time.monotonic() + hold_limit
    threads = [Sender(host, int(port), path, jobs, fresh, deadline) for _ in range(senders)]
    for thread in threads:
        thread.start()
    start_mono, start_wall = time.monotonic() + 0.1, time.time() + 0.1
    sent = []
    for n, payment in enumerate(payments):
        due = n / rate
        time.sleep(max(0.0, start_mono + due - time.monotonic()))
        job = Sent(payment, start_wall + due)
        sent.append(job)
        jobs.put(job)
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return sent


# -- preparing orders ------------------------------------------------------------------------------


class Shop:
    """Buying orders through the buy form and approving them at the sandbox provider, untimed."""

    def __init__(self, base: str, slug: str, plan_id: int, account_id: int, providers: dict, buyers: int,
                 latency: float) -> None:
        self.base, self.slug, self.plan_id, self.account_id = base, slug, plan_id, account_id
        self.providers, self.buyers = providers, buyers
        self.latency = latency  # seconds the provider's API takes during the steps, not while preparing
        self.bought = 0
        self._local = threading.local()

    def _http(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _buy(self, n: int) -> None:
        answer = self._http().post(f"{self.base}/r/{self.slug}/buy", allow_redirects=False, timeout=HTTP_TIMEOUT, data={
            "intent": f"bench-{n}", "plan_id": self.plan_id, "account_id": self.account_id,
            "ip": client_ip(n), "mac": client_mac(n),
        })
        if answer.status_code != 303:
            raise SystemExit(f"buying order {n}: HTTP {answer.status_code}")

    def _approve(self, ref: str) -> bytes:
        """Approve quietly, then read the transaction as FedaPay's webhook carries it."""
        http = self._http()
        answer = http.post(f"{self.providers['base_url']}/control/fedapay/{ref}/approve", timeout=HTTP_TIMEOUT)
        if answer.status_code != 204:
            raise SystemExit(f"approving {ref}: HTTP {answer.status_code}")
        tx = http.get(f"{self.providers['settings']['FEDAPAY_SANDBOX_API_URL']}/v1/transactions/{ref}", timeout=HTTP_TIMEOUT,
                      params={"include": "currency,customer"},
                      headers={"Authorization": f"Bearer {FEDAPAY['secret_key']}"}).json()["v1/transaction"]
        event = {"id": int(ref), "name": "transaction.approved", "object": "transaction", "entity": tx,
                 "account": {"id": 1}}
        return json.dumps(event).encode()

    def _provider_latency(self, seconds: float) -> None:
        requests.post(f"{self.providers['base_url']}/control/knobs", json={"api_latency": seconds},
                      timeout=HTTP_TIMEOUT).raise_for_status()

    def prepare(self, app, count: int) -> list[Payment]:
        self._provider_latency(0.0)
        first = self.bought
        with app.app_context():
            last_id = db.session.scalar(db.select(db.func.max(Order.id))) or 0
        with ThreadPoolExecutor(self.buyers) as pool:
            list(pool.map(self._buy, range(first, first + count)))
        self.bought += count
        with app.app_context():
            rows = db.session.execute(db.select(Order.id, Order.code, Order.provider_ref)
                                      .where(Order.id > last_id).order_by(Order.id)).all()
            db.session.remove()
        if len(rows) != count or any(ref is None for _, _, ref in rows):
            raise SystemExit(f"expected {count} pending orders, found {len(rows)}")
        with ThreadPoolExecutor(self.buyers) as pool:
            events = list(pool.map(self._approve, [ref for _, _, ref in rows]))
        self._provider_latency(self.latency)
        return [Payment(order_id, code, ref, event) for (order_id, code, ref), event in zip(rows, events)]


# -- one step --------------------------------------------------------------------------------------


@dataclass
class Step:
    rate: float
    count: int
    sent_rate: float = 0.0
    tickets_rate: float = 0.0
    kiosque: list[float] = field(default_factory=list)  # ms, received_at -> created_on_router_at
    sender: list[float] = field(default_factory=list)  # ms, request sent -> created_on_router_at
    answer: list[float] = field(default_factory=list)  # ms, request sent -> answer read
    failed_answers: int = 0
    lost: int = 0
    duplicated: int = 0
    unmailed: int = 0  # tickets whose owner got no sale email by the end of the drain
    drained_in: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    machine: float = 0.0
    busiest_web: float = 0.0  # the busiest web worker's share
    connections: list[int] = field(default_factory=list)  # the senders' connections each web worker held
    system_web: float = 0.0  # the web workers' time in the kernel

    def held(self, p95_limit: float) -> bool:
        return (self.lost == 0 and self.duplicated == 0 and self.failed_answers == 0
                and bool(self.kiosque) and percentile(self.kiosque, 0.95) <= p95_limit
                and percentile(self.sender, 0.95) <= p95_limit and self.tickets_rate >= 0.95 * self.rate)


def wait_for_tickets(app, ids: list[int], drain: float) -> float:
    """Seconds until every order is provisioned and its owner emailed, or `drain` if some never are."""
    started = time.monotonic()
    with app.app_context():
        while time.monotonic() - started < drain:
            done = db.session.scalar(db.select(db.func.count(Order.id)).where(
                Order.id.in_(ids), Order.status == OrderStatus.PROVISIONED, Order.email_sent_at.is_not(None)))
            db.session.remove()
            if done == len(ids):
                break
            time.sleep(0.25)
    return time.monotonic() - started


def measure(app, step: Step, sent: list[Sent], router: RouterAddress) -> None:
    ids = [s.payment.order_id for s in sent]
    with app.app_context():
        received = dict(db.session.execute(
            db.select(WebhookEvent.order_id, db.func.min(WebhookEvent.received_at))
            .where(WebhookEvent.order_id.in_(ids)).group_by(WebhookEvent.order_id)).all())
        created = dict(db.session.execute(
            db.select(Ticket.order_id, Ticket.created_on_router_at).where(Ticket.order_id.in_(ids))).all())
        provisioned = set(db.session.scalars(db.select(Order.id).where(
            Order.id.in_(ids), Order.status == OrderStatus.PROVISIONED)))
        emailed = db.session.scalar(db.select(db.func.count(Order.id)).where(
            Order.id.in_(ids), Order.email_sent_at.is_not(None)))
        db.session.remove()
    made = []
    for s in sent:
        order_id = s.payment.order_id
        ticket_at = created.get(order_id)
        if ticket_at is None:
            continue
        ticket_ts = as_timestamp(ticket_at)
        made.append(ticket_ts)
        if order_id in received:
            step.kiosque.append((ticket_ts - as_timestamp(received[order_id])) * 1000)
        if s.sent:
            step.sender.append((ticket_ts - s.sent) * 1000)
    step.answer = [(s.answered - s.sent) * 1000 for s in sent if s.answered]
    step.failed_answers = sum(1 for s in sent if not 200 <= s.status < 300)
    step.lost = len(ids) - len(provisioned)
    step.unmailed = len(provisioned) - emailed
    sends = [s.sent for s in sent if s.sent]
    if len(sends) > 1:
        step.sent_rate = (len(sends) - 1) / (max(sends) - min(sends))
    if len(made) > 1:
        step.tickets_rate = (len(made) - 1) / (max(made) - min(sends))
    codes = {s.payment.code for s in sent}
    per_order = Counter(tag for tag in router_tags(router) if tag in codes)
    step.duplicated = sum(1 for n in per_order.values() if n > 1)


def router_tags(address: RouterAddress) -> list[str]:
    """The order code in each hotspot user's comment (vc-123-11.28.26-<code>), read over the API."""
    client = RouterClient(address)
    try:
        return [row.get("comment", "").rsplit("-", 1)[-1] for row in client.find_users()]
    finally:
        client.close()


def as_timestamp(moment: datetime) -> float:
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


# -- report ----------------------------------------------------------------------------------------


def latency_cells(values: list[float]) -> str:
    if not values:
        return "- | - | -"
    return " | ".join(f"{percentile(values, q):.0f}" for q in (0.5, 0.95, 0.99))


# What a deployment runs: the rest stands in for the providers, the router, the mail relay and the notifier.
KIOSQUE_PARTS = ("web workers", "web master", "worker", "PostgreSQL (kiosque_bench)", "PostgreSQL (server)")


def print_tables(steps: list[Step], p95_limit: float, labels: list[str]) -> None:
    print("| offered /s | sent /s | tickets /s | webhook→ticket (Kiosque) p50 | p95 | p99 "
          "| sent→ticket (sender) p50 | p95 | p99 | answer p95 | non-2xx | lost | duplicated | no email | held |")
    print("|---" * 15 + "|")
    for s in steps:
        print(f"| {s.rate:g} | {s.sent_rate:.1f} | {s.tickets_rate:.1f} | {latency_cells(s.kiosque)} "
              f"| {latency_cells(s.sender)} | {percentile(s.answer, 0.95) if s.answer else 0:.0f} "
              f"| {s.failed_answers} | {s.lost} | {s.duplicated} | {s.unmailed} | {'yes' if s.held(p95_limit) else 'no'} |")
    print()
    print("CPU over each step, in % of one core; machine: busy share of all cores; other work: the"
          " machine's busy time not used by the processes listed, in % of one core:")
    print()
    labels = [label for label in labels if any(s.cpu.get(label) for s in steps)] or labels
    print("| offered /s | " + " | ".join(labels) + " | busiest web worker | connections per web worker "
          "| web workers in the kernel "
          "| all of these | CPU ms per ticket | of which Kiosque's | machine | other work |")
    print("|---" * (len(labels) + 9) + "|")
    for s in steps:
        ours = sum(s.cpu.values())
        kiosque = sum(v for label, v in s.cpu.items() if label in KIOSQUE_PARTS)
        other = max(0.0, s.machine * CORES - ours)
        per_ticket = 10 * ours / s.tickets_rate if s.tickets_rate else 0
        kiosque_per_ticket = 10 * kiosque / s.tickets_rate if s.tickets_rate else 0
        print(f"| {s.rate:g} | " + " | ".join(f"{s.cpu.get(label, 0):.0f}" for label in labels)
              + f" | {s.busiest_web:.0f} | {'/'.join(map(str, s.connections))} | {s.system_web:.0f} | {ours:.0f} "
              f"| {per_ticket:.1f} | {kiosque_per_ticket:.1f} | {s.machine:.0f} % of {CORES} cores | {other:.0f} |")
    print()
    held = [s.rate for s in steps if s.held(p95_limit)]
    best = f"{max(held):g} webhooks/s" if held else "none of the rates tried"
    print(f"Highest rate held (p95 <= {p95_limit:g} ms from both clocks, 0 lost, 0 duplicated, "
          f"all answered 2xx, tickets/s >= 95 % of offered): {best}")


# -- profile --------------------------------------------------------------------------------------


def py_spy() -> str | None:
    return shutil.which("py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def profile(pids: list[int], seconds: float, folder: Path) -> list[Path]:
    """Sample the web workers with py-spy, 100 times a second, the thread holding the GIL only.

    The samples are then where the workers spend Python CPU. py-spy pauses each process at each
    sample, which slows it down a little: keep these runs apart from the measured ones.
    """
    outputs = [folder / f"web-{pid}.txt" for pid in pids]
    samplers = [subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                  "--rate", "100", "--gil", "--format", "raw", "--output", str(out)],
                                 stdout=subprocess.DEVNULL, stderr=open(out.with_suffix(".err"), "w"))
                for pid, out in zip(pids, outputs)]
    for sampler in samplers:
        try:
            sampler.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            sampler.kill()
    return [out for out in outputs if out.exists()]


PARTS = (  # (label, a frame that marks it), the first found from the top of this list wins
    ("the paid path (webhook intake to the ticket)", "webhook_intake.py:"),
    ("an email sent after the response (an owner's or a router's news)", "deferred.py:"),
    ("Flask around the view", "Flask.wsgi_app ("),
    ("gunicorn: parsing, writing, access log", "ThreadWorker.handle_request ("),
    ("gunicorn: connections, main loop", "ThreadWorker."),
)


def profile_lines(folder: Path, top: int = 15) -> list[str]:
    """Where the sampled CPU went: by part, by line of Kiosque's code, by function, on top of the stack."""
    parts: Counter[str] = Counter()
    lines_of_ours: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    on_top: Counter[str] = Counter()
    total = 0
    for path in sorted(folder.glob("*.txt")):
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n, frames = int(count), stack.split(";")
            total += n
            parts[next((label for label, mark in PARTS if mark in stack), "other")] += n
            ours = [frame for frame in frames if "(portal/" in frame]
            if ours:
                function, _, where = ours[-1].rpartition(" (")
                lines_of_ours[f"{where.rstrip(')')} {function}"] += n
            names = [frame_name(frame) for frame in frames]
            for name in set(names):
                inclusive[name] += n
            on_top[names[-1]] += n
    if not total:
        errors = [p.read_text().strip().splitlines()[-1:] for p in folder.glob("*.err") if p.read_text().strip()]
        return ["(no samples)", *[e[0] for e in errors if e]]
    def share(items, count):
        return [f"  {100 * n / total:5.1f} %  {name}" for name, n in items.most_common(count)]

    framework = ("threading.py", "concurrent/futures", "gunicorn/", "flask/app.py", "werkzeug/", "webhooks.py")
    lines = [f"{total} samples (py-spy, 100 Hz, the thread holding the GIL in each web worker)", "",
             "by part:", *share(parts, len(PARTS) + 1), "",
             "by line of Kiosque's code (the innermost one on the stack):", *share(lines_of_ours, top), "",
             "functions on the stack (inclusive), past gunicorn and Flask:"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in inclusive.most_common(top + 20)
              if not any(part in name for part in framework)][:top]
    lines += ["", "on top of the stack (self):", *share(on_top, top)]
    return lines


def frame_name(frame: str) -> str:
    """`function (path:line)` -> `function (path)`."""
    function, _, where = frame.rpartition(" (")
    return f"{function or frame} ({where.rstrip(')').rsplit(':', 1)[0]})"


# -- main ------------------------------------------------------------------------------------------


@dataclass
class Stage:
    app: object
    base: str
    webhook: str
    slug: str
    plan_id: int
    account_id: int
    router: RouterAddress
    providers: dict
    processes: dict[str, subprocess.Popen]


def stage(args: argparse.Namespace, orders: int, processes: dict[str, subprocess.Popen]) -> Stage:
    """The sandboxes, the database seeded, gunicorn and the worker started; each process in `processes`."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    password = "bench-router"
    processes["sandbox router"], router_at = start_sandbox(
        "router", "--password", password, "--hosts", str(orders), "--latency", str(args.router_latency / 1000))
    config = {"SECRET_KEY": "bench-secret", "ENCRYPTION_KEY": Fernet.generate_key().decode(),
              "SQLALCHEMY_DATABASE_URI": args.database, "PUBLIC_URL": base,
              "RATELIMIT_ENABLED": False, "WORKER_POLL_AFTER": 24 * 3600, **ROUTER_EGRESS}
    app = create_app({**config, "ENV": "bench", "LOG_LEVEL": "WARNING"})
    with app.app_context():
        db.drop_all()
        db.create_all()
        router = demo.seed_shop(router_at["host"], router_at["port"], password, dns_name="wifi.net")
        account = next(a for a in router.accounts if a.provider == "fedapay")
        webhook = f"{base}/webhooks/fedapay/{account.webhook_token}"
        slug, plan_id, account_id, address = router.slug, router.plans[0].id, account.id, router_address(router)
        db.session.remove()
    processes["sandbox providers"], providers = start_sandbox("providers", "--fedapay-webhook", webhook)
    processes["sandbox mail"], mailbox = start_sandbox("mail")  # the owners' sale emails go there
    os.setpriority(os.PRIO_PROCESS, processes["sandbox mail"].pid, args.background_nice)
    config.update(mailbox["settings"])
    # This process sends the notifications itself, from its own connections.
    requests.post(f"{providers['base_url']}/control/knobs", json={"lose_notifications": True},
                  timeout=HTTP_TIMEOUT).raise_for_status()
    config.update(providers["settings"])

    env = {**os.environ, "PORTAL_ENV": "production", "PORT": str(port), "PORTAL_LOG_LEVEL": args.log_level}
    env.update({f"PORTAL_{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
    if args.web_workers:
        env["WEB_CONCURRENCY"] = str(args.web_workers)
    if args.threads:
        env["GUNICORN_THREADS"] = str(args.threads)
    output = open(args.server_log, "a") if args.server_log else subprocess.DEVNULL
    processes["web"] = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *args.gunicorn_args.split(), "wsgi:app"],
        cwd=ROOT, env=env, stdout=output, stderr=output)
    processes["worker"] = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "portal", "worker", "--interval", "1"],
        cwd=ROOT, env=env, stdout=output, stderr=output, preexec_fn=lambda: os.nice(args.background_nice))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/health", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.1)
    else:
        raise SystemExit("gunicorn did not start")
    return Stage(app, base, webhook, slug, plan_id, account_id, address, providers, processes)


def run_step(args: argparse.Namespace, st: Stage, shop: Shop, rate: float, groups, folder: Path) -> Step:
    count = round(rate * args.hold)
    started = time.monotonic()
    payments = shop.prepare(st.app, count)
    say(f"{rate:g}/s: {count} orders bought and approved in {time.monotonic() - started:.0f} s; offering")
    time.sleep(2)  # the preparation's last requests settle
    meter = CpuMeter(groups)
    meter.start()
    sampling = None
    if args.profile:
        workers = groups()["web workers"]
        sampling = threading.Thread(target=lambda: time.sleep(args.hold / 4) or profile(
            workers, min(args.profile, args.hold / 2), folder / f"{rate:g}"), daemon=True)
        (folder / f"{rate:g}").mkdir()
        sampling.start()
    held_connections: list[int] = []
    port = int(st.base.rsplit(":", 1)[1])
    counting = threading.Timer(args.hold / 2, lambda: held_connections.extend(
        connections_per_process(groups()["web workers"], port)))
    counting.start()
    sent = offer(payments, rate, args.senders, st.webhook, args.new_connections, args.hold + args.drain + 60)
    counting.cancel()
    cpu, machine = meter.stop()
    if sampling is not None:
        sampling.join(args.profile + 60)
    step = Step(rate, count, cpu=cpu, machine=machine, busiest_web=meter.busiest.get("web workers", 0.0),
                system_web=meter.system.get("web workers", 0.0), connections=sorted(held_connections, reverse=True))
    step.drained_in = wait_for_tickets(st.app, [p.order_id for p in payments], args.drain)
    measure(st.app, step, sent, st.router)
    say(f"{rate:g}/s: tickets {step.tickets_rate:.1f}/s, p95 Kiosque {p95(step.kiosque):.0f} ms, "
        f"sender {p95(step.sender):.0f} ms, lost {step.lost}, duplicated {step.duplicated}, no email {step.unmailed}, "
        f"non-2xx {step.failed_answers}, drained in {step.drained_in:.1f} s; "
        + ", ".join(f"{k} {v:.0f}%" for k, v in cpu.items()))
    return step


def p95(values: list[float]) -> float:
    return percentile(values, 0.95) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[20, 40, 60, 80, 100, 120],
                        help="offered webhooks per second, one step each")
    parser.add_argument("--hold", type=float, default=60, help="seconds each rate is offered")
    parser.add_argument("--senders", type=int, default=32, help="concurrent webhook connections")
    parser.add_argument("--new-connections", action="store_true", help="a new connection per webhook")
    parser.add_argument("--drain", type=float, default=30, help="seconds to wait for the last tickets")
    parser.add_argument("--p95-limit", type=float, default=250, help="ms")
    parser.add_argument("--all", action="store_true", help="run every rate, even after one is not held")
    parser.add_argument("--router-latency", type=float, default=0, help="ms before each router reply")
    parser.add_argument("--provider-latency", type=float, default=0, help="ms before each provider API answer")
    parser.add_argument("--web-workers", type=int, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--threads", type=int, help="threads per gunicorn worker (default: gunicorn.conf.py's)")
    parser.add_argument("--gunicorn-args", default="", help="extra gunicorn options, e.g. --reuse-port")
    parser.add_argument("--background-nice", type=int, default=10, metavar="N",
                        help="CPU priority (nice) of the worker and the mail server (docs/deployment.md: 10)")
    parser.add_argument("--buyers", type=int, default=8, help="concurrent buyers while preparing a step")
    parser.add_argument("--log-level", default="info", help="Kiosque's log level (production: info)")
    parser.add_argument("--server-log", help="a file for gunicorn's and the worker's output (default: none)")
    parser.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                        help="sample the web workers' CPU with py-spy for this long in each step (slows them)")
    parser.add_argument("--database", default=os.environ.get(
        "KIOSQUE_BENCH_DATABASE_URL", "postgresql+psycopg://kiosque:kiosque@127.0.0.1/kiosque_bench"))
    args = parser.parse_args()
    if args.profile and not py_spy():
        raise SystemExit("--profile needs py-spy (pip install py-spy)")

    print(f"`{' '.join(['.venv/bin/python bench/load_webhooks.py', *sys.argv[1:]])}`, "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {CORES} cores, load average before "
          f"{os.getloadavg()[0]:.1f}")
    print()
    processes: dict[str, subprocess.Popen] = {}
    try:
        st = stage(args, sum(round(rate * args.hold) for rate in args.rates), processes)
        database = args.database.rsplit("/", 1)[1]
        web = processes["web"]

        def groups() -> dict[str, list[int]]:
            providers = processes["sandbox providers"]  # gunicorn's master and its worker
            ours, others = postgres_backends(database)
            return {"web workers": sorted(children(web.pid)), "web master": [web.pid],
                    "worker": [processes["worker"].pid], "PostgreSQL (kiosque_bench)": ours,
                    "PostgreSQL (server)": others, "sandbox providers": [providers.pid, *children(providers.pid)],
                    "sandbox router": [processes["sandbox router"].pid],
                    "sandbox mail": [processes["sandbox mail"].pid], "load generator": [os.getpid()]}

        threads = args.threads or os.environ.get("GUNICORN_THREADS") or runpy.run_path(str(ROOT / "gunicorn.conf.py"))["threads"]
        say(f"gunicorn: {len(groups()['web workers'])} workers, {threads} threads each; "
            f"{args.senders} senders ({'a new connection per webhook' if args.new_connections else 'kept alive'}); "
            f"router latency {args.router_latency:g} ms, provider API {args.provider_latency:g} ms; hold {args.hold:g} s; "
            f"worker and mail server at nice {args.background_nice}")
        shop = Shop(st.base, st.slug, st.plan_id, st.account_id, st.providers, args.buyers,
                    args.provider_latency / 1000)
        steps: list[Step] = []
        with tempfile.TemporaryDirectory() as folder:
            for rate in args.rates:
                steps.append(run_step(args, st, shop, rate, groups, Path(folder)))
                if not steps[-1].held(args.p95_limit) and not args.all:
                    break
            print(f"gunicorn: {len(groups()['web workers'])} workers, {threads} threads each; {args.senders} webhook senders, "
                  f"{'a new connection per webhook' if args.new_connections else 'connections kept alive'}; "
                  f"router latency {args.router_latency:g} ms, provider API {args.provider_latency:g} ms; {args.hold:g} s per step; "
                  f"worker and mail server at nice {args.background_nice}")
            print()
            print_tables(steps, args.p95_limit, [label for label in groups()])
            for rate_folder in sorted(Path(folder).iterdir(), key=lambda p: float(p.name)):
                print()
                print(f"Profile at {rate_folder.name}/s:")
                print()
                print("\n".join(profile_lines(rate_folder)))
    finally:
        for process in reversed(processes.values()):
            stop(process)


if __name__ == "__main__":
    main()
