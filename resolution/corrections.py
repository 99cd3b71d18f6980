"""Corrections over time: re-examining a bounded neighbourhood when new evidence contradicts
earlier decisions, and applying curators' feedback as hard constraints.

The evidence is what the resolver already scored: every decided item keeps p(same) against its
candidates (``g:`` in ``EntityStore``). ``Corrector`` gathers the neighbourhood (the item's
entity plus at most ``max_entities`` others, ``max_members`` members), its pair scores and the
curators' constraints, has ``reclustering`` partition it and plan the moves, and turns the moves
into decisions. It never calls a model, so it costs table reads only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from resolution.entities import EntityStore
from resolution.feedback import Feedback
from resolution.media_evidence import SAME_PICTURE_SCORE, SAME_RECORDING_SCORE
from resolution.model import MEDIA_LINK_BACK, Action, Candidate, Decision, Relation, ScoredCandidate, stable_id
from resolution.reclustering import pair_key, plan_moves, recluster
from settings import WorkerSettings


@dataclass(frozen=True)
class CorrectionLimits:
    # Defaults are the worker's (settings.WorkerSettings): one place for each.
    merge_threshold: float = WorkerSettings.merge_threshold
    # An item scoring at least this with members of two entities binds them.
    bind_threshold: float = WorkerSettings.merge_threshold
    # A pair scored at most this is evidence that the two are not the same.
    conflict_threshold: float = WorkerSettings.conflict_threshold
    # Work per event: entities re-examined beyond the trigger's own, and their members in all.
    max_entities: int = WorkerSettings.correction_max_entities
    max_members: int = WorkerSettings.correction_max_members


@dataclass
class Correction:
    decisions: list[Decision] = field(default_factory=list)
    examined: int = 0  # entities re-examined


class Corrector:
    def __init__(self, store: EntityStore, limits: CorrectionLimits) -> None:
        self._store = store
        self.limits = limits

    # --- consulted before each decision --------------------------------------------------------

    def forbidden_entities(self, content_id: str) -> set[str]:
        """Entities this item must not be merged into: they hold an item a curator said is
        different. A member that merely scores as contradicting it does not forbid its entity:
        the item merges where another member scores it the same, and the re-examination after
        the decision, which sees the contradiction, splits the entity by constrained single
        linkage (on musicbrainz-20k fit, forbidding kept 6 records out of their entity, 5 of them
        because the entity held a wrong member)."""
        return {e for other in self._store.constraints(content_id).get("different", []) if (e := self._entity(other))}

    def must_link_target(self, content_id: str) -> tuple[str, str] | None:
        """(entity, partner) when a curator said this item is the same as one already placed."""
        for other in sorted(self._store.constraints(content_id).get("same", [])):
            entity = self._entity(other)
            if entity:
                return entity, other
        return None

    # --- after each decision -------------------------------------------------------------------

    def after_decision(self, decision: Decision) -> Correction:
        """Re-examines the item's neighbourhood when its evidence contradicts the state."""
        cid = decision.content_id
        own = self._entity(cid)
        if own is None:
            return Correction()
        edges = self._store.edges(cid)
        constraints = self._store.constraints(cid)
        conflict = False
        bound: dict[str, float] = {}
        for other, p in edges.items():
            entity = self._entity(other)
            if entity is None:
                continue
            if entity == own and p <= self.limits.conflict_threshold:
                conflict = True
            elif entity != own and p >= self.limits.bind_threshold:
                bound[entity] = max(bound.get(entity, 0.0), p)
        if bound:
            # Not worth re-examining what the item itself contradicts.
            for other, p in edges.items():
                if p <= self.limits.conflict_threshold:
                    bound.pop(self._entity(other) or "", None)
        for other in constraints.get("different", []):
            conflict = conflict or self._entity(other) == own
        linked = {e for other in constraints.get("same", []) if (e := self._entity(other)) and e != own}
        if not (conflict or bound or linked):
            return Correction()
        others = sorted(linked) + sorted(bound, key=lambda e: (-bound[e], e))
        why = "contradicting evidence" if conflict else "must-link feedback" if linked else "binding evidence"
        reason = f"re-resolution after {decision.event_id} ({cid}): {why}"
        return self.reexamine([own], others, decision.event_id, cid, "re-resolution", reason)

    def media_link_back(self, decision: Decision, item_is_video: bool, link_threshold: float) -> Correction:
        """A recording that arrives after its music video: the video was decided before the
        recording existed (left NEW, or linked to another recording by text or chroma), and the
        recording takes one decision of its own (usually MERGE with its duplicates). When the
        recording's candidates hold a video it scores ``video_of`` by sound (fingerprint >=
        ``SAME_RECORDING_SCORE``) or by picture, and that video's entity holds no ``video_of`` link
        to the recording's entity, a LINK decision links the video to it, with the pair's evidence;
        by sound, the video's ``version_of`` links to other entities are named in
        ``previous_entity_ids`` and replaced (a video carries one recording's audio); its other
        ``video_of`` links stay.

        Only a video this state holds (this worker's partitions): another worker's entity is not
        this state's to change (left to reconciliation, docs/media.md)."""
        own = self._entity(decision.content_id)
        if item_is_video or decision.trigger != "content-event" or own is None:
            return Correction()
        out: list[Decision] = []
        for c in decision.candidates:
            signals = c.signals
            heard = signals.get("audio_compared", 0.0) >= 1.0
            by_media = (
                signals.get("audio_fingerprint", 0.0) >= SAME_RECORDING_SCORE
                if heard
                else signals.get("image_hash", 0.0) >= SAME_PICTURE_SCORE
            )
            if (
                c.relation is not Relation.VIDEO_OF
                or c.probabilities.get("video_of", 0.0) < link_threshold
                or signals.get("one_is_video", 0.0) < 1.0
                or not by_media
            ):
                continue
            video = c.candidate.content_id
            entity = self._entity(video)
            record = self._store.entity(entity) if entity else None
            if entity is None or record is None or entity == own:
                continue
            links = [(rel, other, self._store.resolve_id(other)) for rel, other in record["relations"]]
            if any(rel == "video_of" and live == own for rel, _, live in links):
                continue
            # Its other video_of links stay: on the generated set they lead to another entity of
            # the same recording (a duplicate left apart), and replacing them lost 4 of 30 links.
            # The same audio says the video carries this recording, so a version_of link chroma or
            # the text gave it is wrong; a picture says less (an album's tracks share a cover).
            replaced = (
                tuple(sorted({o for rel, o, live in links if rel == "version_of" and live != own})) if heard else ()
            )
            p = float(c.probabilities["video_of"])
            media = {k: v for k, v in signals.items() if k.startswith(("audio_", "image_"))}
            recording = Candidate(decision.content_id, own, self._store.work_of(own) or own, c.candidate.similarity, {})
            out.append(
                Decision(
                    event_id=decision.event_id,
                    content_id=video,
                    action=Action.LINK,
                    entity_id=entity,
                    work_id=self._store.work_of(entity) or entity,
                    confidence=p,
                    related_entity_id=own,
                    relation=Relation.VIDEO_OF,
                    candidates=(ScoredCandidate(recording, Relation.VIDEO_OF, p, c.probabilities, signals),),
                    signals=media,
                    reason=f"link-back after {decision.event_id} ({decision.content_id}): p(video_of)={p:.3f} by "
                    + ("sound" if heard else "picture")
                    + (f"; replaces links to {', '.join(replaced)}" if replaced else ""),
                    previous_entity_ids=replaced,
                    trigger=MEDIA_LINK_BACK,
                )
            )
        return Correction(out, 0)

    def feedback_decisions(self, fb: Feedback) -> Correction:
        """The decisions that apply one feedback: CONSTRAIN (recorded even when the items are not
        known yet, so it holds when they arrive), then whatever the constraint changes."""
        entity = self._entity(fb.left) or ""
        constrain = Decision(
            event_id=fb.feedback_id,
            content_id=fb.left,
            action=Action.CONSTRAIN,
            entity_id=entity,
            work_id=self._store.work_of(entity) or "" if entity else "",
            confidence=1.0,
            reason=f"curator {fb.curator}: {fb.left} {fb.verdict} {fb.right}" + (f" ({fb.note})" if fb.note else ""),
            members=(fb.left, fb.right),
            trigger="curator-feedback",
            verdict=fb.verdict,
        )
        return Correction([constrain], 0)

    def after_feedback(self, fb: Feedback) -> Correction:
        """Runs once the CONSTRAIN decision is applied: re-clusters the two items' entities."""
        left, right = self._entity(fb.left), self._entity(fb.right)
        own = [e for e in dict.fromkeys((left, right)) if e]
        if not own:
            return Correction()
        reason = f"curator feedback {fb.feedback_id}: {fb.left} {fb.verdict} {fb.right}"
        # A verdict that splits an entity can free a member to honour an older must-link with an
        # item elsewhere (a = c, then a != c, with b = c held all along): those entities join in.
        partners = [
            e
            for entity in own
            for member in self._store.members(entity)
            for other in self._store.constraints(member).get("same", [])
            if (e := self._entity(other)) and e not in own
        ]
        correction = self.reexamine(
            own, list(dict.fromkeys(partners)), fb.feedback_id, fb.left, "curator-feedback", reason
        )
        if fb.verdict in ("version_of", "video_of"):
            left, right = self._entity_after(fb.left, correction), self._entity_after(fb.right, correction)
            if left and right and left != right:
                correction.decisions.append(
                    Decision(
                        event_id=fb.feedback_id,
                        content_id=fb.left,
                        action=Action.LINK,
                        entity_id=left,
                        work_id=self._store.work_of(left) or left,
                        confidence=1.0,
                        related_entity_id=right,
                        relation=Relation(fb.verdict),
                        reason=reason,
                        trigger="curator-feedback",
                    )
                )
        return correction

    def _entity_after(self, content_id: str, correction: Correction) -> str | None:
        entity = self._entity(content_id)
        for d in correction.decisions:
            if content_id in d.members and d.moves_members:
                entity = d.entity_id
        return entity

    # --- re-examination ------------------------------------------------------------------------

    def reexamine(
        self, own: list[str], others: list[str], event_id: str, content_id: str, trigger: str, reason: str
    ) -> Correction:
        """Re-clusters ``own`` (always) plus as many of ``others`` as the limits allow."""
        members: dict[str, list[str]] = {e: self._store.members(e) for e in own}
        total = sum(len(m) for m in members.values())
        for entity in others:
            if len(members) >= len(own) + self.limits.max_entities:
                break
            if entity in members:
                continue
            found = self._store.members(entity)
            if total + len(found) > self.limits.max_members:
                continue
            members[entity] = found
            total += len(found)
        nodes = [m for ms in members.values() for m in ms]
        node_set = set(nodes)
        edges: dict[tuple[str, str], float] = {}
        must: set[tuple[str, str]] = set()
        cannot: set[tuple[str, str]] = set()
        for node in nodes:
            for other, p in self._store.edges(node).items():
                if other in node_set and other != node:
                    pair = pair_key(node, other)
                    edges[pair] = min(p, edges.get(pair, p))  # newer contradicting evidence wins
            held = self._store.constraints(node)
            must.update(pair_key(node, o) for o in held.get("same", []) if o in node_set and o != node)
            cannot.update(pair_key(node, o) for o in held.get("different", []) if o in node_set and o != node)
        clusters = recluster(members, edges, must, cannot, self.limits.merge_threshold, self.limits.conflict_threshold)
        moves = plan_moves(clusters, members, lambda part: stable_id("ent", event_id, "split", min(part)))
        decisions = []
        for move in moves:
            work = self._store.work_of(move.target) if not move.target_is_new else None
            decisions.append(
                Decision(
                    event_id=event_id,
                    content_id=content_id,
                    action=move.action,
                    entity_id=move.target,
                    work_id=work or self._store.work_of(move.source) or move.target,
                    confidence=1.0,
                    reason=f"{reason}; {len(members)} entities re-examined",
                    previous_entity_ids=(move.source,),
                    members=move.members,
                    trigger=trigger,
                    new_entity_ids=(move.target,) if move.action is Action.SPLIT else (),
                )
            )
        return Correction(decisions, len(members))

    def _entity(self, content_id: str) -> str | None:
        return self._store.entity_of(content_id)
