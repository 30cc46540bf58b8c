import actok


def test_every_public_name_is_importable():
    missing = [name for name in actok.__all__ if not hasattr(actok, name)]
    assert not missing


def test_registry_names_resolve_to_their_classes():
    for name in actok.available_tokenizers():
        assert actok.get_tokenizer_class(name).name == name
