"""Pages of a list by name: walked with the cursor, they give every name once, in order, even
when the list changes between two pages."""

from __future__ import annotations

import pytest

from gateway.admin.pages import SortedNames, cut


def walk(names: list[str], limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = cut(names, limit, cursor)
        pages.append(list(page.names))
        if page.next_cursor is None:
            return pages
        assert page.next_cursor == page.names[-1]
        cursor = page.next_cursor


@pytest.mark.parametrize("limit", [1, 3, 7, 10, 11, 1000])
def test_the_pages_give_every_name_once_in_order(limit: int) -> None:
    names = sorted(f"m{i:03d}" for i in range(10))
    pages = walk(names, limit)
    assert [n for page in pages for n in page] == names
    assert all(len(page) == limit for page in pages[:-1])
    assert len(pages) == max(1, -(-len(names) // limit))


def test_a_page_as_large_as_the_rest_is_the_last() -> None:
    assert cut(["a", "b"], 2, None).next_cursor is None
    assert cut([], 5, None).names == []
    assert cut([], 5, None).next_cursor is None
    assert cut(["a", "b"], 5, "b").names == []


def test_a_cursor_whose_name_is_gone_goes_on_after_it() -> None:
    first = cut(["a", "b", "c", "d"], 2, None)
    assert list(first.names) == ["a", "b"]
    changed = ["a", "ab", "c", "d", "e"]  # "b" removed, "ab" added before it, "e" after
    assert list(cut(changed, 2, first.next_cursor).names) == ["c", "d"]


def test_sorted_names_are_sorted_once_per_owner() -> None:
    class Table:
        pass

    names = SortedNames()
    one, two = Table(), Table()
    assert names.of(one, ["b", "a"]) == ["a", "b"]
    assert names.of(one, ["z"]) == ["a", "b"]  # the same owner: its names do not change
    assert names.of(two, ["z", "y"]) == ["y", "z"]
