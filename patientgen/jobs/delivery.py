"""Runs a delivery job: a completed job's casualties pushed to a FHIR server or an MLLP listener.

A delivery is a job like any other (claimed, leased, fenced, cancelled, retried, reaped), made
by `JobService.push`; its config holds the source job's scenario and a `delivery` block naming
the target. The casualties are made again from (scenario, seed), which gives byte for byte the
source job's files, and turned into items in a fixed order: for FHIR each resource of the bulk
output (the facilities a casualty visited, then its Patient, Encounters, Conditions,
Observations, Procedures), for MLLP each ADT message of adt.hl7.

Where the delivery got to is a cursor, (casualty index, items of that casualty delivered), saved
with the job's progress after every group the target acknowledged (a bundle, a message), in the
same fenced write that extends the lease; rejections are saved with it (all counted, the first
MAX_LISTED listed with what the target said). A run that resumes after a crash starts at the
saved cursor: what was acknowledged before the last save is not sent again; what was sent after
it is sent again (FHIR: a PUT of the same resource with the same id, which creates nothing new;
MLLP: the same message with the same control id). Between groups, and during every wait for a
retry, the runner checks as between chunks: lost lease, worker stopping, cancel requested.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from patientgen.delivery import Item, Rejection, Target
from patientgen.jobs.model import Action, CancelRequested, RunOutcome

#: Rejections listed in progress and summary (all are counted).
MAX_LISTED = 200
#: A paced delivery sends items due within this many seconds of each other together.
GROUP_WINDOW = 0.05


@dataclass
class DeliveryProgress:
    """What the delivery has done; the heartbeat thread and the checkpoints save snapshots."""

    patients_total: int
    kind: str
    counted: str = "patients"  # what patient/patients_total count: "items" in a replay
    patient: int = 0  # the cursor: casualties before it are delivered...
    item: int = 0  # ...and this many items of casualty `patient`
    delivered: int = 0
    rejected: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)
    groups: int = 0
    retries: int = 0
    seconds_before: float = 0.0  # spent by earlier runs
    delivered_here: int = 0
    started: float = field(default_factory=time.monotonic)
    shared: bool = False  # one worker delivers: its snapshot is the whole truth
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Held while a snapshot is taken and written, so saves reach the store in order.
    save_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def resumed(cls, total: int, kind: str, details: dict[str, Any]) -> DeliveryProgress:
        cursor = details.get("cursor") or [0, 0]
        return cls(
            patients_total=total,
            kind=kind,
            patient=int(cursor[0]),
            item=int(cursor[1]),
            delivered=int(details.get("delivered") or 0),
            rejected=int(details.get("rejected") or 0),
            rejections=list(details.get("rejections") or []),
            groups=int(details.get("groups") or 0),
            retries=int(details.get("retries") or 0),
            seconds_before=float(details.get("seconds") or 0.0),
        )

    def advance(self, cursor: tuple[int, int], count: int, rejected: list[Rejection]) -> None:
        with self.lock:
            self.patient, self.item = cursor
            self.delivered += count - len(rejected)
            self.delivered_here += count
            self.rejected += len(rejected)
            room = MAX_LISTED - len(self.rejections)
            self.rejections.extend(r.as_dict() for r in rejected[: max(room, 0)])
            self.groups += 1 if count else 0

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        with self.lock:
            here = max(time.monotonic() - self.started, 1e-6)
            rate = self.delivered_here / here
            percent = int(99 * self.patient / max(self.patients_total, 1))
            return percent, {
                "phase": "delivering",
                "patients_done": self.patient,
                "patients_total": self.patients_total,
                "counted": self.counted,
                "cursor": [self.patient, self.item],
                "delivered": self.delivered,
                "rejected": self.rejected,
                "rejections": list(self.rejections),
                "groups": self.groups,
                "retries": self.retries,
                "seconds": round(self.seconds_before + here, 3),
                "rate": round(rate, 1),
                "unit": "resources" if self.kind == "fhir" else "messages",
            }


def casualty_items(
    scenario: Any, kind: str, start: int, stop: int | None = None
) -> Iterator[tuple[int, list[Item]]]:
    """(casualty index, its items) for casualties start .. stop-1, made from (scenario, seed)."""
    from patientgen.formats import fhir, hl7
    from patientgen.generator import generate

    job = fhir.scope(scenario) if kind == "fhir" else b""
    for offset, p in enumerate(generate(scenario, start, stop)):
        if kind == "fhir":
            found = [
                Item(f"{rtype}/{rid}", data) for rtype, rid, data in fhir.casualty_resources(p, job)
            ]
        else:
            found = [
                Item(_control_id(message), message)
                for message in hl7.encode(p).split(b"\n")
                if message
            ]
        yield start + offset, found


def items(scenario: Any, kind: str, patient: int, skip: int) -> Iterator[tuple[int, int, Item]]:
    """(casualty index, item index within it, item) from casualty `patient` on, leaving out the
    first `skip` items of that one. The order is fixed by (scenario, seed)."""
    for index, found in casualty_items(scenario, kind, patient):
        for n, item in enumerate(found):
            if index == patient and n < skip:
                continue
            yield index, n, item
        if not found:
            yield index, -1, Item("", b"")  # a casualty with nothing to send moves the cursor


def paced_groups(
    timeline: Any,
    position: int,
    speed: float,
    start: str | None,
    group_size: Callable[[], int],
    pause: Callable[[float], None],
) -> Iterator[tuple[list[Item], int]]:
    """The items of `timeline` from `position` on, each group when its items are due: (group,
    position after it). Exercise time zero happens at `start` (ISO, or None/"now": now) for a
    replay from the beginning; a resumed one goes on from its next item now (a pause stops the
    exercise clock: nothing comes in a burst after it). Items due within GROUP_WINDOW seconds of
    the first of a group go with it, up to group_size()."""
    from patientgen.jobs.timeline import due, wall_start

    anchor: tuple[float, int] | None = None
    if position == 0:
        anchor = (wall_start(start, time.time()), timeline.start())
    group: list[Item] = []
    first_due = 0.0
    for at, when, item in timeline.items(position):
        if anchor is None:
            anchor = (time.time(), when)
        this_due = due(anchor[0], anchor[1], when, speed)
        if group and (this_due - first_due > GROUP_WINDOW or len(group) >= group_size()):
            yield group, at
            group = []
        if not group:
            first_due = this_due
            wait = this_due - time.time()
            if wait > 0:
                pause(wait)
        group.append(item)
    yield group, len(timeline)


def _control_id(message: bytes) -> str:
    from patientgen.delivery.mllp import control_id

    return control_id(message)


def open_target(config: dict[str, Any], pause: Any, settings: Any) -> Target:
    """The target a delivery config names (see JobService.push), its credentials unsealed
    (delivery.sealed; SecretUnreadable when this process's key cannot open them)."""
    from patientgen.delivery import tls_context
    from patientgen.delivery.sealed import unseal_delivery

    config = unseal_delivery(config, settings)
    retrying = {"retries": settings.delivery_retries, "backoff": settings.delivery_backoff}
    trusted = tls_context(settings.delivery_ca_file)
    if config["target"] == "fhir":
        from patientgen.delivery.fhir import FhirTarget

        return FhirTarget(
            config["url"],
            pause,
            mode=config.get("mode", "transaction"),
            bundle_size=int(config.get("bundle_size", 100)),
            authorization=config.get("authorization"),
            tls=trusted,
            **retrying,
        )
    from patientgen.delivery.mllp import MllpTarget

    tls = trusted if config.get("tls") else None
    return MllpTarget(config["host"], int(config["port"]), pause, tls=tls, **retrying)


def run_delivery(run: Any, beat: Any, progress: DeliveryProgress) -> RunOutcome:
    """Deliver from the saved cursor to the end, then complete the job with the report; the
    runner's `run_job` handles what this raises (lost lease, stop, cancel, failure)."""
    from patientgen.jobs.runner import Cancel, check_boundary
    from patientgen.scenario import Scenario

    store, job, worker_id, settings = run.store, run.job, run.worker_id, run.settings
    config = job.config["delivery"]
    scenario = Scenario.model_validate(job.config["scenario"])

    def pause(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            check_boundary(run, beat)
            run.stop.wait(min(left, 0.25))
        check_boundary(run, beat)

    def save() -> None:
        with progress.save_lock:
            percent, details = progress.snapshot()
            current = store.heartbeat(
                job.job_id, worker_id, settings.lease_seconds, percent, details
            )
        if current.cancel_requested_at is not None:
            beat.cancel_requested = True
        if run.on_progress is not None:
            run.on_progress(progress.patient, progress.patients_total)

    kind = "fhir" if config["target"] == "fhir" else "hl7"
    target = open_target(config, pause, settings)
    try:
        if config.get("pace"):  # a replay: every item when it happens, in exercise time
            from patientgen.jobs.timeline import Timeline

            timeline = Timeline(scenario, kind)
            with progress.lock:
                progress.patients_total, progress.counted = len(timeline), "items"
            pace = config["pace"]
            for paced, after in paced_groups(
                timeline,
                progress.patient,
                float(pace["speed"]),
                pace.get("start"),
                lambda: target.group_size,
                pause,
            ):
                _deliver(target, paced, (after, 0), progress, save, run, beat)
        else:
            group: list[Item] = []
            cursor = (progress.patient, progress.item)
            for index, n, item in items(scenario, kind, progress.patient, progress.item):
                if n >= 0:
                    group.append(item)
                cursor = (index, n + 1) if n >= 0 else (index + 1, 0)
                if len(group) >= target.group_size:
                    _deliver(target, group, cursor, progress, save, run, beat)
                    group = []
            # every casualty's last item moves the cursor to its end; the job ends past the last
            _deliver(target, group, (scenario.total_patients, 0), progress, save, run, beat)
    finally:
        target.close()
    check_boundary(run, beat)
    _, details = progress.snapshot()
    report = {
        key: details[key]
        for key in ("delivered", "rejected", "rejections", "groups", "retries", "seconds", "unit")
    }
    report["rate"] = round(details["delivered"] / max(details["seconds"], 1e-6), 1)
    report["target"] = {k: v for k, v in config.items() if k != "authorization"}
    report["patients"] = scenario.total_patients
    try:
        store.finish(job.job_id, worker_id, Action.COMPLETE, output_files=[], summary=report)
    except CancelRequested:
        raise Cancel from None
    return RunOutcome.COMPLETED


def _deliver(
    target: Target,
    group: list[Item],
    cursor: tuple[int, int],
    progress: DeliveryProgress,
    save: Any,
    run: Any,
    beat: Any,
) -> None:
    from patientgen.jobs.runner import check_boundary

    check_boundary(run, beat)
    retries = target.retries
    rejected = target.send(group) if group else []
    progress.advance(cursor, len(group), rejected)
    with progress.lock:
        progress.retries += target.retries - retries
    save()
    if run.settings.chunk_delay:
        run.stop.wait(run.settings.chunk_delay)
