"""Is this an Azure VM? Linux DMI and the Windows equivalent, judged the same way."""

from __future__ import annotations

from pathlib import Path

from midoctor.facts.host import AZURE_ASSET_TAG, dmi_facts, looks_like_azure
from midoctor.facts.windows_host import dmi_from_windows, parse_reg_values

DATA = Path(__file__).parent / "data" / "windows"


def test_windows_azure_vm_is_recognised() -> None:
    dmi = dmi_from_windows((DATA / "reg_bios_azure.txt").read_text(), (DATA / "asset_tag_azure.txt").read_text())
    assert dmi == {"sys_vendor": "Microsoft Corporation", "product_name": "Virtual Machine",
                   "bios_vendor": "Microsoft Corporation", "chassis_asset_tag": AZURE_ASSET_TAG}
    assert looks_like_azure(dmi) is True


def test_windows_laptop_is_not_azure() -> None:
    dmi = dmi_from_windows((DATA / "reg_bios_laptop.txt").read_text(), "")
    assert dmi["sys_vendor"] == "LENOVO"
    assert looks_like_azure(dmi) is False


def test_hyper_v_without_azure_tag_cannot_be_told() -> None:
    dmi = dmi_from_windows((DATA / "reg_bios_azure.txt").read_text(), "No Asset Tag")
    assert looks_like_azure(dmi) is None


def test_reg_parser_tolerates_garbage() -> None:
    assert parse_reg_values("\x00garbage\n    \n") == {}
    assert dmi_from_windows("", "") == {}


def test_linux_dmi_from_a_recorded_tree(tmp_path: Path) -> None:
    (tmp_path / "sys_vendor").write_text("Microsoft Corporation\n")
    (tmp_path / "chassis_asset_tag").write_text(AZURE_ASSET_TAG + "\n")
    dmi = dmi_facts(tmp_path)
    assert looks_like_azure(dmi) is True
    (tmp_path / "sys_vendor").write_text("Amazon EC2\n")
    (tmp_path / "chassis_asset_tag").write_text("\n")
    assert looks_like_azure(dmi_facts(tmp_path)) is False
    assert looks_like_azure(dmi_facts(tmp_path / "absent")) is None
