from tests.factories import ResidentFactory, SlotFactory


def test_factories_build_rows_inside_the_test_transaction(session):
    slot = SlotFactory()
    resident = ResidentFactory()
    assert slot.id and resident.id
    assert slot.free == 3
