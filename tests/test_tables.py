"""Plain-text tables: aligned, as wide as their content."""
from utils.tables import format_table


def test_format_table_aligns_columns_to_their_widest_entry() -> None:
    table = format_table({"model A": {"iou": 0.95712, "ce": 0.011}, "B": {"iou": 1.0, "ce": -12.5}},
                         {"iou": "IoU", "ce": "median CE"}, corner="model")
    assert table.splitlines() == [
        "model      IoU  median CE",
        "model A  0.957      0.011",
        "B        1.000    -12.500",
    ]


def test_format_table_uses_the_number_format() -> None:
    assert format_table({"x": {"v": 0.5}}, {"v": "value"}, number_format=".1%").splitlines()[1] == "x  50.0%"


def test_a_broken_designs_percentage_is_not_printed_as_a_number() -> None:
    table = format_table({"broken": {"v": 2.2e7}, "stiffer": {"v": -150.0}, "fine": {"v": 0.052}}, {"v": "CE"},
                         ".1%")
    assert "e+" not in table and "> 10,000%" in table and "< −10,000%" in table
    assert "5.2%" in table
