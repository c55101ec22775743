from app.services.residents import id_numbers


def test_a_number_with_the_right_check_character_is_valid():
    assert id_numbers.is_valid("11010519491231002X")


def test_a_wrong_check_character_or_impossible_birthday_is_invalid():
    assert not id_numbers.is_valid("110105194912310021")
    assert not id_numbers.is_valid("110105194913310028")  # month 13
    assert not id_numbers.is_valid("12345")


def test_masking_shows_only_the_last_four():
    assert id_numbers.mask("002X") == "**************002X"
