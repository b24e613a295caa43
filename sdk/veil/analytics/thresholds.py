"""Which day cells of an answer may be shown: k persons, as far as veil can know them.

A cookieless visitor pseudonym is keyed per UTC day and per user-agent, so it is not a
person: one person on five days, or on five browsers, is five pseudonyms. The unit is
therefore one UTC day at a time (cells.py): a day cell clears k if

- its rows carry k distinct subjects (a subject is one consenting person), or
- its cookieless rows come from at least k distinct visitors AND at least k distinct networks
  (five browsers behind one network are one network; visitors an attacker makes up from their
  own network add nothing).

Subjects and cookieless visitors are never added together (a consenting person may also browse
cookieless: adding them could count one person twice). An answer over several days is the sum
of the day cells that cleared, never of one that did not, so two time ranges differ only by
day cells anyone may see.

Then complementary suppression (`complement`): in every group of day cells of one day that
differ in one dimension only, and in each day as a whole, a lone suppressed cell takes the
next smallest shown cell with it, so a day's total minus its shown cells gives at best the sum
of two hidden cells, never one. docs/analytics.md says what this does and does not guarantee.
"""

from collections.abc import Iterable, Sequence

from .cells import DayCounts, canonical


def clears(cell: DayCounts, k: int) -> bool:
    """k distinct subjects, or k distinct cookieless visitors from k distinct networks."""
    return cell.subjects >= k or min(cell.visitors, cell.networks) >= k


def complement(
    keys: Sequence[tuple[str | None, ...]], sizes: Sequence[int], hidden: Iterable[int]
) -> set[int]:
    """The indices to suppress: `hidden` (those below k), and, until nothing changes, in each
    group of cells of one day (key[0]) equal on all dimensions but one, and in each day as a
    whole, when exactly one is suppressed, the smallest shown one (by `sizes`) beside it."""
    out = set(hidden)
    if not out:
        return out
    width = len(keys[0]) if keys else 0
    groups: list[list[int]] = []
    for dim in range(1, width):
        by_rest: dict[tuple[str | None, ...], list[int]] = {}
        for i, key in enumerate(keys):
            by_rest.setdefault(key[:dim] + key[dim + 1 :], []).append(i)
        groups.extend(g for g in by_rest.values() if len(g) > 1)
    # each day as a whole last: once each group hides none or two, so does the day, and
    # taking a neighbour there first could hide more than needed
    if width != 2:  # with one dimension, its groups are the days already
        days: dict[str | None, list[int]] = {}
        for i, key in enumerate(keys):
            days.setdefault(key[0], []).append(i)
        groups.extend(days.values())
    changed = True
    while changed:
        changed = False
        for group in groups:
            gone = [i for i in group if i in out]
            if len(gone) != 1:
                continue
            shown = [i for i in group if i not in out]
            if shown:
                # ties by key, not position: the same cells hide whichever path read them
                out.add(min(shown, key=lambda i: (sizes[i], canonical(keys[i]))))
                changed = True
    return out
