"""Which cells of an answer may be shown: k persons, as far as veil can know them.

A cookieless visitor pseudonym is keyed per UTC day and per user-agent, so it is not a
person: one person on five days, or on five browsers, is five pseudonyms. The unit is
therefore

- a distinct `subject` where rows carry one (a subject is one consenting person), and
- for cookieless rows, one UTC day at a time: a cell clears k only if on some single day its
  cookieless rows come from at least k distinct visitors AND at least k distinct networks
  (network pseudonyms are per day too, so distinct (day, network) pairs would let one
  household on five days pass). Five browsers behind one network are one network; visitors
  an attacker makes up from their own network add nothing.

A cell clears k if either holds; subjects and cookieless visitors are never added together
(a consenting person may also browse cookieless: adding them could count one person twice).

Then complementary suppression (`complement`): in every group of cells that differ in one
dimension only, and in the answer as a whole, a lone suppressed cell takes the next smallest
shown cell with it, so a total minus the shown cells gives at best the sum of two hidden
cells, never one. docs/analytics.md says what this does and does not guarantee.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(slots=True)
class CellCounts:
    """What one cell's rows add up to, from per-day partial aggregates."""

    events: int = 0
    day_visitors: int = 0  # sum over days of that day's distinct cookieless visitors
    subjects: int = 0  # distinct subjects over the whole range
    best_day: int = 0  # max over days of min(distinct visitors, distinct networks)

    def add_day(self, events: int, visitors: int, networks: int) -> None:
        self.events += events
        self.day_visitors += visitors
        self.best_day = max(self.best_day, min(visitors, networks))

    @property
    def visitors(self) -> int:
        """Distinct visitor pseudonyms, exact over a range: each is one day's; plus subjects
        (a subject's rows carry no visitor pseudonym)."""
        return self.day_visitors + self.subjects


def clears(cell: CellCounts, k: int) -> bool:
    """k distinct subjects, or k distinct visitors from k distinct networks in one day."""
    return cell.subjects >= k or cell.best_day >= k


def complement(
    keys: Sequence[tuple[object, ...]], sizes: Sequence[int], hidden: Iterable[int]
) -> set[int]:
    """The indices to suppress: `hidden` (those below k), and, until nothing changes, in each
    group of cells equal on all dimensions but one (and in the whole answer), when exactly
    one is suppressed, the smallest shown one (by `sizes`) beside it."""
    out = set(hidden)
    if not out:
        return out
    width = len(keys[0]) if keys else 0
    groups: list[list[int]] = []
    for dim in range(width):
        by_rest: dict[tuple[object, ...], list[int]] = {}
        for i, key in enumerate(keys):
            by_rest.setdefault(key[:dim] + key[dim + 1 :], []).append(i)
        groups.extend(g for g in by_rest.values() if len(g) > 1)
    # the answer's total last: once each group hides none or two, so does the whole, and
    # taking a neighbour there first could hide more than needed
    groups.append(list(range(len(keys))))
    changed = True
    while changed:
        changed = False
        for group in groups:
            gone = [i for i in group if i in out]
            if len(gone) != 1:
                continue
            shown = [i for i in group if i not in out]
            if shown:
                out.add(min(shown, key=lambda i: (sizes[i], i)))
                changed = True
    return out
