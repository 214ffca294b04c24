"""Reading master data from Excel (.xlsx) and the templates to fill in.

A sheet is read whole and checked row by row before anything is written: the services create the
rows only when every row is good, so a file with one bad cell leaves the database as it was. Each
problem names the spreadsheet row (the header is row 1) and the column as its header reads in the
file. Headers may be written in Chinese or English (名称 or name); unknown columns are ignored.

Limits keep a hostile or mistaken file from eating the server: the upload size, the unpacked size of
the zip container, the number of rows and of columns."""

import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

from django.utils.translation import gettext as _

from .errors import MasterDataImportFailed
from .models import CustomerGrade, Region

__all__ = [
    "ImportResult",
    "Column",
    "CUSTOMER_COLUMNS",
    "PROJECT_COLUMNS",
    "MAX_IMPORT_BYTES",
    "MAX_IMPORT_ROWS",
    "MAX_UNPACKED_BYTES",
    "REGION_ALIASES",
    "region_code",
    "read_sheet",
    "import_rows",
    "customer_template_xlsx",
    "project_template_xlsx",
    "XLSX_CONTENT_TYPE",
]

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_UNPACKED_BYTES = 50 * 1024 * 1024
MAX_IMPORT_ROWS = 2000
MAX_COLUMNS = 40
MAX_REPORTED_ERRORS = 500


@dataclass(frozen=True)
class ImportResult:
    created: int
    ids: list = field(default_factory=list)


@dataclass(frozen=True)
class Column:
    field: str
    zh: str
    en: str
    required: bool = False
    aliases: tuple[str, ...] = ()
    example: str = ""

    @property
    def header(self) -> str:
        """The header the templates write: both languages, a star when required."""
        return f"{self.zh} / {self.en}" + (" *" if self.required else "")

    def names(self) -> set[str]:
        return {_normalise(n) for n in (self.field, self.zh, self.en, *self.aliases)}


CUSTOMER_COLUMNS = (
    Column(
        "name", "客户名称", "name", True, ("名称", "客户", "customer", "customer name"), "上海申汇城市建设投资有限公司"
    ),
    Column(
        "uscc",
        "统一社会信用代码",
        "uscc",
        True,
        ("信用代码", "社会信用代码", "credit code", "unified social credit code"),
        "91310115MA1H7GXK13",
    ),
    Column("region", "区域", "region", True, ("大区", "地区"), "华东"),
    Column("grade", "客户等级", "grade", False, ("等级", "级别"), "B"),
    Column("address", "地址", "address", False, ("详细地址",), "上海市浦东新区世纪大道1568号"),
    Column("notes", "备注", "notes", False, ("说明", "note", "remarks"), ""),
    Column("contact_name", "联系人", "contact name", False, ("联系人姓名", "contact"), "顾志远"),
    Column("contact_title", "联系人职务", "contact title", False, ("职务", "title"), "工程部经理"),
    Column(
        "contact_phone",
        "联系人手机",
        "contact mobile",
        False,
        ("手机", "手机号", "联系电话", "电话", "mobile", "phone", "contact phone"),
        "13816620101",
    ),
    Column("contact_email", "联系人邮箱", "contact email", False, ("邮箱", "电子邮件", "email"), ""),
)

PROJECT_COLUMNS = (
    Column("code", "项目编码", "code", True, ("编码", "项目编号", "编号", "project code"), "SH-01"),
    Column("name", "项目名称", "name", True, ("名称", "project name"), "龙阳路综合改造工程"),
    Column(
        "customer",
        "客户",
        "customer",
        True,
        ("客户名称", "客户信用代码", "客户统一社会信用代码", "customer name", "customer uscc"),
        "91310115MA1H7GXK13",
    ),
    Column("project_type", "项目类型", "project type", True, ("类型", "工程类型", "type"), "municipal_road"),
    Column("region", "区域", "region", True, ("大区", "地区"), "华东"),
    Column("province", "省份", "province", False, ("省",), "上海市"),
    Column("city", "城市", "city", False, ("市",), "上海市"),
    Column("address", "地址", "address", False, ("详细地址", "site address"), "浦东新区龙阳路"),
    Column("latitude", "纬度", "latitude", False, ("lat",), "31.203"),
    Column("longitude", "经度", "longitude", False, ("lng", "lon"), "121.557"),
    Column(
        "geofence_radius_m",
        "围栏半径（米）",
        "geofence radius (m)",
        False,
        ("围栏半径", "地理围栏半径", "geofence radius", "geofence"),
        "500",
    ),
    Column("manager", "项目经理", "manager", False, ("经理", "project manager", "manager username"), "pm_zhang"),
)

# Region codes, their English names and their Chinese names (with or without 地区).
REGION_ALIASES = {
    "华东": Region.EAST,
    "华北": Region.NORTH,
    "华南": Region.SOUTH,
    "华中": Region.CENTRAL,
    "西南": Region.SOUTHWEST,
    "西北": Region.NORTHWEST,
    "东北": Region.NORTHEAST,
}


def _normalise(header: str) -> str:
    """A header's comparable form: lower case, no notes in brackets, no stars, single spaces."""
    text = re.sub(r"[（(][^）)]*[）)]", "", str(header)).replace("*", "")
    text = re.sub(r"[\s_\-]+", " ", text).strip().lower()
    return text


def region_code(value: str) -> str:
    """A region's code from its code, its English name (East China, east) or its Chinese name
    (华东, 华东地区); anything else is returned unchanged for the service to refuse."""
    text = (value or "").strip()
    lowered = text.lower()
    for region in Region:
        if lowered in (region.value, f"{region.value} china", str(region.label).lower()):
            return region.value
    return REGION_ALIASES.get(text.removesuffix("地区"), text)


def _cell_text(value) -> str:
    """A cell as text: whole numbers without '.0' (phone numbers typed as numbers), dates ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value).strip()


def _file_error(message: str, row: int | None = None, column: str = "") -> MasterDataImportFailed:
    return MasterDataImportFailed(message, errors=[{"row": row, "column": column, "message": message}])


def _as_stream(file) -> io.BytesIO:
    """The upload as an in-memory stream, refused when larger than MAX_IMPORT_BYTES."""
    if isinstance(file, bytes | bytearray):
        data = bytes(file)
    else:
        size = getattr(file, "size", None)
        if size is not None and size > MAX_IMPORT_BYTES:
            data = b"x" * (MAX_IMPORT_BYTES + 1)
        else:
            if hasattr(file, "seek"):
                file.seek(0)
            data = file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise _file_error(
            _("The file is larger than %(mb)d MB; split it into smaller files.") % {"mb": MAX_IMPORT_BYTES // 2**20}
        )
    return io.BytesIO(data)


def read_sheet(file, columns: tuple[Column, ...]) -> tuple[dict[str, str], list[tuple[int, dict[str, str]]]]:
    """The first sheet of an .xlsx file: {field: header as written} and [(row number, {field: text})]
    for every non-empty row below the header. Problems with the file as a whole (not an .xlsx, too
    big, too many rows, missing or repeated required columns) raise MasterDataImportFailed."""
    stream = _as_stream(file)
    not_xlsx = _("This is not an Excel .xlsx file. Save it as “Excel Workbook (.xlsx)” and try again.")
    try:
        with zipfile.ZipFile(stream) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise _file_error(not_xlsx)
    if unpacked > MAX_UNPACKED_BYTES:
        raise _file_error(_("The file unpacks to more than %(mb)d MB.") % {"mb": MAX_UNPACKED_BYTES // 2**20})
    stream.seek(0)
    from openpyxl import load_workbook  # on use: openpyxl adds ~18 MB to every worker that imports it

    try:
        workbook = load_workbook(stream, read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds (KeyError, InvalidFileException…) for a broken file
        raise _file_error(not_xlsx)
    try:
        if not workbook.worksheets:
            raise _file_error(_("The workbook has no sheet."))
        rows = workbook.worksheets[0].iter_rows(max_row=MAX_IMPORT_ROWS + 2, max_col=MAX_COLUMNS, values_only=True)
        try:
            header = next(rows)
        except StopIteration:
            raise _file_error(_("The sheet is empty: row 1 must hold the column headers."), row=1)
        fields = _map_headers(header, columns)
        data: list[tuple[int, dict[str, str]]] = []
        for number, row in enumerate(rows, start=2):
            if number > MAX_IMPORT_ROWS + 1:
                raise _file_error(
                    _("A file may hold at most %(max)d rows below the header; split it.") % {"max": MAX_IMPORT_ROWS}
                )
            values = {f: _cell_text(row[i]) if i < len(row) else "" for f, (i, _h) in fields.items()}
            if any(values.values()):
                data.append((number, values))
    finally:
        workbook.close()
    if not data:
        raise _file_error(_("There are no rows below the header."), row=2)
    return {f: h for f, (_i, h) in fields.items()}, data


def _map_headers(header, columns: tuple[Column, ...]) -> dict[str, tuple[int, str]]:
    by_name = {}
    for column in columns:
        for name in column.names():
            by_name[name] = column
    found: dict[str, tuple[int, str]] = {}
    errors = []
    for index, cell in enumerate(header or ()):
        text = _cell_text(cell)
        if not text:
            continue
        candidates = [_normalise(text), *(_normalise(part) for part in text.split("/"))]
        column = next((by_name[c] for c in candidates if c in by_name), None)
        if column is None:
            continue
        if column.field in found:
            errors.append(
                {
                    "row": 1,
                    "column": text,
                    "message": _("This column repeats “%(first)s”.") % {"first": found[column.field][1]},
                }
            )
            continue
        found[column.field] = (index, text)
    for column in columns:
        if column.required and column.field not in found:
            errors.append(
                {
                    "row": 1,
                    "column": column.header.rstrip(" *"),
                    "message": _("The required column “%(zh)s” (%(en)s) is missing.")
                    % {"zh": column.zh, "en": column.en},
                }
            )
    if errors:
        raise MasterDataImportFailed("; ".join(e["message"] for e in errors), errors=errors)
    return found


def _column_of(error_field: str) -> str:
    """The import column a service field error belongs to ("contacts.0.phone" → contact_phone)."""
    if error_field.startswith("contacts"):
        parts = error_field.split(".")
        return f"contact_{parts[2]}" if len(parts) > 2 else "contact_name"
    return error_field


def _unique_key(field_name: str, value: str) -> str:
    return re.sub(r"[\s-]", "", value).upper() if field_name == "uscc" else value.strip().lower()


def import_rows(
    file,
    *,
    columns: tuple[Column, ...],
    clean: Callable[[dict, object], dict],
    new_errors: Callable[[], object],
    unique: str,
    create: Callable[[dict], object],
) -> ImportResult:
    """Read, check every row with `clean(values, errors)` (the services' own rules), refuse the whole
    file with every problem found, or create every row with `create(cleaned)`. Runs inside the
    caller's transaction, so a failure while creating also leaves nothing."""
    headers, rows = read_sheet(file, columns)
    labels = {c.field: c.header.rstrip(" *") for c in columns}
    problems: list[dict] = []
    cleaned_rows = []
    seen: dict[str, int] = {}
    for number, values in rows:
        errs = new_errors()
        cleaned = clean(values, errs)
        key = _unique_key(unique, values.get(unique, ""))
        if key and key in seen:
            errs.add(unique, _("Repeats row %(row)d of this file.") % {"row": seen[key]})
        elif key:
            seen[key] = number
        for error in errs.items:
            column = _column_of(error["field"])
            problems.append(
                {"row": number, "column": headers.get(column, labels.get(column, column)), "message": error["message"]}
            )
        cleaned_rows.append(cleaned)
    if problems:
        shown = problems[:MAX_REPORTED_ERRORS]
        if len(problems) > MAX_REPORTED_ERRORS:
            shown.append(
                {
                    "row": None,
                    "column": "",
                    "message": _("…and %(count)d more problems.") % {"count": len(problems) - MAX_REPORTED_ERRORS},
                }
            )
        rows_with_problems = len({p["row"] for p in problems})
        raise MasterDataImportFailed(
            _("Nothing was imported: %(rows)d of %(total)d rows have problems.")
            % {"rows": rows_with_problems, "total": len(rows)},
            errors=shown,
        )
    created = [create(cleaned) for cleaned in cleaned_rows]
    return ImportResult(created=len(created), ids=[obj.pk for obj in created])


# ------------------------------------------------------------------------------------------ templates


def _template(columns: tuple[Column, ...], title: str, notes: list[tuple[str, str]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    header_font, required_fill = Font(bold=True), PatternFill("solid", fgColor="FFF2CC")
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title
    for index, column in enumerate(columns, start=1):
        cell = sheet.cell(row=1, column=index, value=column.header)
        cell.font = header_font
        if column.required:
            cell.fill = required_fill
        sheet.column_dimensions[get_column_letter(index)].width = max(14, len(column.header) + 6)
    sheet.freeze_panes = "A2"
    help_sheet = workbook.create_sheet("说明 Notes")
    help_sheet.append(["列 / column", "必填 / required", "示例 / example"])
    for column in columns:
        help_sheet.append([column.header.rstrip(" *"), "是 / yes" if column.required else "", column.example])
    help_sheet.append([])
    for name, values in notes:
        help_sheet.append([name, values])
    for letter, width in (("A", 34), ("B", 70), ("C", 34)):
        help_sheet.column_dimensions[letter].width = width
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _region_note() -> tuple[str, str]:
    chinese = {v: k for k, v in REGION_ALIASES.items()}
    return "区域 / region", ", ".join(f"{chinese[r.value]} = {r.value}" for r in Region)


def customer_template_xlsx() -> bytes:
    """An empty customer sheet with the headers the importer reads, and a notes sheet."""
    return _template(
        CUSTOMER_COLUMNS,
        "客户 Customers",
        [_region_note(), ("客户等级 / grade", ", ".join(f"{g.value} = {g.label}" for g in CustomerGrade))],
    )


def project_template_xlsx(project_types=()) -> bytes:
    """An empty project sheet, with the project types (code = name) listed on the notes sheet."""
    types = ", ".join(f"{t.code} = {t.name}" for t in project_types)
    return _template(
        PROJECT_COLUMNS,
        "项目 Projects",
        [
            _region_note(),
            ("项目类型 / project type", types),
            ("客户 / customer", "统一社会信用代码或客户全称 / the customer's credit code or full name"),
            ("项目经理 / manager", "用户名 / username"),
        ],
    )
