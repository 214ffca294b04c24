"""The demo company's fixed content: departments, people, customers, sites, suppliers.

The company and every customer and supplier are invented; the cities and coordinates are real.
Unified social credit codes are built from the registering district's administrative division code
and carry a valid GB 32100-2015 check character (python-stdnum).
"""

import zlib
from dataclasses import dataclass
from decimal import Decimal

from stdnum.cn import uscc

__all__ = [
    "COMPANY",
    "PASSWORDS",
    "OrgUnitSpec",
    "UserSpec",
    "CustomerSpec",
    "ProjectSpec",
    "SupplierSpec",
    "ORG_UNITS",
    "USERS",
    "PROJECT_TYPES",
    "CUSTOMERS",
    "PROJECTS",
    "SUPPLIERS",
    "credit_code",
]

COMPANY = "华夏示范建设工程有限公司"

# The documented demo passwords, one per role (README.md, "Demo logins").
PASSWORDS = {
    "admin": "admin-demo-2026",
    "project_manager": "pm-demo-2026",
    "approver": "approver-demo-2026",
    "field_engineer": "engineer-demo-2026",
    "finance": "finance-demo-2026",
    "auditor": "auditor-demo-2026",
}


def credit_code(division: str, name: str) -> str:
    """A valid unified social credit code for an invented enterprise (category 91) registered in
    `division` (six-digit administrative division code); the body is derived from the name."""
    base = f"91{division}{zlib.crc32(name.encode()) % 10**9:09d}"
    return base + uscc.calc_check_digit(base)


def _rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")] for line in table.strip().splitlines()]


@dataclass(frozen=True)
class OrgUnitSpec:
    code: str
    name: str
    parent: str | None


@dataclass(frozen=True)
class UserSpec:
    username: str
    display_name: str
    role: str
    unit: str
    phone: str
    duty: str

    @property
    def password(self) -> str:
        return PASSWORDS[self.role]


@dataclass(frozen=True)
class CustomerSpec:
    key: str
    name: str
    division: str
    region: str
    grade: str
    province: str
    city: str
    address: str
    contact_name: str
    contact_title: str
    contact_phone: str

    @property
    def uscc(self) -> str:
        return credit_code(self.division, self.name)


@dataclass(frozen=True)
class ProjectSpec:
    code: str
    name: str
    customer: str  # CustomerSpec.key; the site is in the customer's city
    type_code: str
    address: str
    latitude: Decimal
    longitude: Decimal
    manager: str
    engineer: str


@dataclass(frozen=True)
class SupplierSpec:
    name: str
    division: str
    kind: str  # supplier | subcontractor
    region: str
    trade: str  # what they are engaged for; used in order titles
    types: tuple[str, ...]  # project types they work on
    small_scale: bool  # small-scale taxpayer: 3% simplified VAT
    contact_name: str
    contact_phone: str
    qualification: str

    @property
    def uscc(self) -> str:
        return credit_code(self.division, self.name)


ORG_UNITS = tuple(
    OrgUnitSpec(code, name, parent or None)
    for code, name, parent in _rows(
        f"""
HQ      | {COMPANY}   |
GMO     | 总经理办公室 | HQ
ENG     | 工程管理部   | HQ
BD      | 市场经营部   | HQ
FIN     | 财务部       | HQ
AUD     | 审计部       | HQ
IT      | 信息中心     | HQ
EAST    | 华东分公司   | HQ
SOUTH   | 华南分公司   | HQ
NORTH   | 华北分公司   | HQ
CENTRAL | 华中分公司   | HQ
WEST    | 西部分公司   | HQ
"""
    )
)

USERS = tuple(
    UserSpec(*row)
    for row in _rows(
        """
admin       | 系统管理员 | admin           | IT      | 13800000001 | administrator: users, master data
gm_wang     | 王建国     | approver        | GMO     | 13800000002 | general manager: ≥ ¥5,000,000 or margin < 8%
approver_li | 李明       | approver        | ENG     | 13800000003 | head of engineering: approves up to ¥5,000,000
pm_zhang    | 张伟       | project_manager | EAST    | 13900000011 | project manager: Shanghai, Hangzhou
pm_chen     | 陈静       | project_manager | EAST    | 13900000012 | project manager: Nanjing, Suzhou
pm_zhao     | 赵磊       | project_manager | NORTH   | 13900000013 | project manager: North and Northeast China
pm_liu      | 刘洋       | project_manager | SOUTH   | 13900000014 | project manager: South China
pm_sun      | 孙强       | project_manager | CENTRAL | 13900000015 | project manager: Central and Northwest China
pm_huang    | 黄海       | project_manager | WEST    | 13900000016 | project manager: Southwest China
eng_wu      | 吴涛       | field_engineer  | EAST    | 13700000021 | field engineer: East China
eng_xu      | 徐斌       | field_engineer  | NORTH   | 13700000022 | field engineer: North and Northeast China
eng_zhou    | 周鹏       | field_engineer  | SOUTH   | 13700000023 | field engineer: South China
eng_yang    | 杨帆       | field_engineer  | CENTRAL | 13700000024 | field engineer: Central and Northwest China
eng_ma      | 马超       | field_engineer  | WEST    | 13700000025 | field engineer: Southwest China
fin_qian    | 钱芳       | finance         | FIN     | 13600000031 | finance: settlements
fin_he      | 何丽       | finance         | FIN     | 13600000032 | finance: settlements
audit_lin   | 林慧       | auditor         | AUD     | 13500000041 | auditor: reads everything, changes nothing
"""
    )
)

PROJECT_TYPES = (
    ("municipal_road", "市政道路", "Municipal roads"),
    ("water", "给排水", "Water supply and drainage"),
    ("bridge", "桥梁", "Bridges"),
    ("building", "房屋建筑", "Buildings"),
    ("landscaping", "园林绿化", "Landscaping"),
    ("mep", "机电安装", "MEP installation"),
    ("power", "电力", "Power"),
    ("tunnel", "隧道", "Tunnels"),
)

CUSTOMERS = tuple(
    CustomerSpec(*row)
    for row in _rows(
        """
SH  | 上海申汇城市建设投资有限公司     | 310115 | east      | A | 上海市           | 上海市   | 浦东新区世纪大道1568号             | 顾志远 | 工程部经理       | 13816620101
HZ  | 杭州钱潮基础设施开发有限公司     | 330114 | east      | B | 浙江省           | 杭州市   | 钱塘区江东大道99号                 | 沈佳琪 | 项目总监         | 13906540102
NJ  | 南京江岳新区建设发展有限公司     | 320111 | east      | B | 江苏省           | 南京市   | 浦口区江浦街道新浦路120号          | 周文斌 | 基建处处长       | 13905170103
SZ  | 苏州澄湖园区市政管理有限公司     | 320571 | east      | A | 江苏省           | 苏州市   | 工业园区星湖街328号                | 陆晓东 | 总工程师         | 13962150104
BJ  | 北京京畿城市副中心建设有限公司   | 110112 | north     | A | 北京市           | 北京市   | 通州区运河东大街57号               | 韩立群 | 工程管理部部长   | 13910010105
TJ  | 天津滨沽水务工程有限公司         | 120116 | north     | C | 天津市           | 天津市   | 滨海新区新港二号路35号             | 许海涛 | 副总经理         | 13820020106
BD  | 保定莲池新城投资发展有限公司     | 130606 | north     | C | 河北省           | 保定市   | 莲池区东风东路818号                | 冯国强 | 项目经理         | 13931230107
GZ  | 广州穗南城市更新投资有限公司     | 440115 | south     | A | 广东省           | 广州市   | 南沙区进港大道80号                 | 梁嘉豪 | 工程总监         | 13802410108
SZN | 深圳前湾基础设施投资有限公司     | 440305 | south     | B | 广东省           | 深圳市   | 南山区前湾一路63号                 | 黄志伟 | 建设管理部经理   | 13902560109
NN  | 南宁邕象交通建设有限公司         | 450108 | south     | C | 广西壮族自治区   | 南宁市   | 良庆区五象大道401号                | 韦丽萍 | 工程部主任       | 13977110110
WH  | 武汉江城新区建设投资有限公司     | 420116 | central   | B | 湖北省           | 武汉市   | 黄陂区盘龙城巨龙大道6号            | 胡振华 | 总经理助理       | 13871020111
CS  | 长沙麓湘新区城市建设有限公司     | 430104 | central   | B | 湖南省           | 长沙市   | 岳麓区梅溪湖路28号                 | 彭志刚 | 工程部经理       | 13908450112
ZZ  | 郑州港航区市政建设有限公司       | 410173 | central   | C | 河南省           | 郑州市   | 航空港区四港联动大道88号           | 王晓燕 | 项目总监         | 13937160113
CD  | 成都锦府新区投资集团有限公司     | 510116 | southwest | A | 四川省           | 成都市   | 天府新区天府大道南段1888号         | 杨晓川 | 基建部部长       | 13908060114
CQ  | 重庆两岸新区城市建设有限公司     | 500112 | southwest | B | 重庆市           | 重庆市   | 渝北区金开大道108号                | 谭明亮 | 工程总监         | 13983060115
KM  | 昆明滇澄水务发展有限公司         | 530114 | southwest | C | 云南省           | 昆明市   | 呈贡区彩云北路216号                | 李春华 | 副总工程师       | 13908710116
XA  | 西安曲池新区建设发展有限公司     | 610113 | northwest | B | 陕西省           | 西安市   | 雁塔区芙蓉西路99号                 | 张宏伟 | 工程部经理       | 13909180117
LZ  | 兰州金河新区城市发展投资有限公司 | 620102 | northwest | C | 甘肃省           | 兰州市   | 城关区滨河东路118号                | 马建军 | 项目经理         | 13919310118
YC  | 银川塞上新能源开发有限公司       | 640106 | northwest | C | 宁夏回族自治区   | 银川市   | 金凤区万寿路66号                   | 丁玉芳 | 总经理           | 13909510119
SY  | 沈阳浑河新区建设投资有限公司     | 210112 | northeast | B | 辽宁省           | 沈阳市   | 浑南区创新路177号                  | 刘振东 | 工程部部长       | 13904040120
HRB | 哈尔滨松江热力集团有限公司       | 230109 | northeast | C | 黑龙江省         | 哈尔滨市 | 松北区世茂大道72号                 | 孙立新 | 生产技术部经理   | 13904510121
CC  | 长春净岳城市开发有限公司         | 220106 | northeast | C | 吉林省           | 长春市   | 南关区净月大街2888号               | 赵丽娜 | 工程管理中心主任 | 13904310122
"""  # noqa: E501
    )
)

PROJECTS = tuple(
    ProjectSpec(code, name, customer, type_code, address, Decimal(lat), Decimal(lon), pm, eng)
    for code, name, customer, type_code, address, lat, lon, pm, eng in _rows(
        """
SH-01  | 龙阳路综合改造工程               | SH  | municipal_road | 浦东新区龙阳路（罗山路—锦绣路）       | 31.203600 | 121.557000 | pm_zhang | eng_wu
SH-02  | 临港新片区污水处理厂扩建工程     | SH  | water          | 浦东新区临港新片区海港大道1550号      | 30.899000 | 121.930000 | pm_zhang | eng_wu
HZ-01  | 钱塘江东大道跨线桥工程           | HZ  | bridge         | 钱塘区江东大道与青六路交叉口          | 30.289000 | 120.446000 | pm_zhang | eng_wu
NJ-01  | 江北新区人才公寓项目             | NJ  | building       | 浦口区江浦街道团结路南侧              | 32.157000 | 118.714000 | pm_chen  | eng_wu
SZ-01  | 金鸡湖东岸景观提升工程           | SZ  | landscaping    | 工业园区金鸡湖东岸湖滨绿带            | 31.315000 | 120.702000 | pm_chen  | eng_wu
SZ-02  | 园区数据中心机电安装工程         | SZ  | mep            | 工业园区星龙街与东方大道交叉口        | 31.336000 | 120.740000 | pm_chen  | eng_wu
BJ-01  | 城市副中心运河东大街道路工程     | BJ  | municipal_road | 通州区运河东大街（东六环—宋梁路）     | 39.909000 | 116.657000 | pm_zhao  | eng_xu
BJ-02  | 城市副中心地下综合管廊工程       | BJ  | tunnel         | 通州区潞城镇行政办公区北侧            | 39.900000 | 116.700000 | pm_zhao  | eng_xu
TJ-01  | 滨海新区再生水厂配套管网工程     | TJ  | water          | 滨海新区新港街道闸南路                | 39.004000 | 117.711000 | pm_zhao  | eng_xu
BD-01  | 东部新城110kV输变电工程          | BD  | power          | 莲池区东三环与复兴路交叉口东北侧      | 38.874000 | 115.520000 | pm_zhao  | eng_xu
GZ-01  | 南沙滨海大道改造工程             | GZ  | municipal_road | 南沙区滨海大道（进港大道—港前大道）   | 22.801000 | 113.525000 | pm_liu   | eng_zhou
GZ-02  | 珠江新城商业综合体机电安装工程   | GZ  | mep            | 天河区珠江新城花城大道东段            | 23.120000 | 113.324000 | pm_liu   | eng_zhou
SZN-01 | 前海桂湾片区园林绿化工程         | SZN | landscaping    | 南山区前海桂湾片区听海大道两侧        | 22.530000 | 113.895000 | pm_liu   | eng_zhou
SZN-02 | 宝安机场东连接线隧道工程         | SZN | tunnel         | 宝安区机场东路与宝安大道交叉口        | 22.630000 | 113.800000 | pm_liu   | eng_zhou
NN-01  | 五象新区邕江大桥工程             | NN  | bridge         | 良庆区五象大道跨邕江段                | 22.782000 | 108.365000 | pm_liu   | eng_zhou
WH-01  | 长江新区雨污分流改造工程         | WH  | water          | 黄陂区盘龙城片区                      | 30.730000 | 114.390000 | pm_sun   | eng_yang
WH-02  | 光谷中心城人才公寓项目           | WH  | building       | 东湖高新区高新大道与光谷四路交叉口    | 30.482000 | 114.412000 | pm_sun   | eng_yang
CS-01  | 梅溪湖路西延线工程               | CS  | municipal_road | 岳麓区梅溪湖路（雷锋大道—绕城高速）   | 28.197000 | 112.870000 | pm_sun   | eng_yang
ZZ-01  | 航空港区220kV变电站工程          | ZZ  | power          | 航空港区郑港六路与四港联动大道交叉口  | 34.527000 | 113.852000 | pm_sun   | eng_yang
CD-01  | 兴隆湖环湖绿道工程               | CD  | landscaping    | 天府新区兴隆湖环湖路                  | 30.403000 | 104.080000 | pm_huang | eng_ma
CD-02  | 天府大道南延线工程               | CD  | municipal_road | 天府新区天府大道南段（兴隆湖—视高）   | 30.360000 | 104.070000 | pm_huang | eng_ma
CQ-01  | 两江新区嘉陵江隧道工程           | CQ  | tunnel         | 渝北区嘉陵江南岸礼嘉段                | 29.600000 | 106.530000 | pm_huang | eng_ma
CQ-02  | 悦来会展中心机电安装工程         | CQ  | mep            | 渝北区悦来街道会展大道                | 29.725000 | 106.550000 | pm_huang | eng_ma
KM-01  | 滇池东岸污水管网工程             | KM  | water          | 呈贡区滇池东岸环湖东路                | 24.920000 | 102.760000 | pm_huang | eng_ma
XA-01  | 曲江新区芙蓉西路改造工程         | XA  | municipal_road | 雁塔区芙蓉西路（雁塔南路—曲江大道）   | 34.215000 | 108.964000 | pm_sun   | eng_yang
XA-02  | 西咸新区保障性住房项目           | XA  | building       | 西咸新区沣东新城三桥新街              | 34.330000 | 108.720000 | pm_sun   | eng_yang
LZ-01  | 黄河雁滩大桥改建工程             | LZ  | bridge         | 城关区雁滩黄河段                      | 36.070000 | 103.820000 | pm_sun   | eng_yang
YC-01  | 阅海湾分布式光伏并网工程         | YC  | power          | 金凤区阅海湾中央商务区                | 38.550000 | 106.230000 | pm_sun   | eng_yang
SY-01  | 浑南新区创新路延伸工程           | SY  | municipal_road | 浑南区创新路（浑南大道—全运路）       | 41.730000 | 123.470000 | pm_zhao  | eng_xu
HRB-01 | 松北区供热管网改造工程           | HRB | water          | 松北区世茂大道至创新一路              | 45.820000 | 126.530000 | pm_zhao  | eng_xu
CC-01  | 净月高新区生态景观工程           | CC  | landscaping    | 南关区净月潭国家森林公园北门          | 43.800000 | 125.420000 | pm_zhao  | eng_xu
CC-02  | 长春新区人才公寓项目             | CC  | building       | 长春新区北湖科技园                    | 43.990000 | 125.350000 | pm_zhao  | eng_xu
"""  # noqa: E501
    )
)

SUPPLIERS = tuple(
    SupplierSpec(name, division, kind, region, trade, tuple(types.split()), small == "yes", contact, phone, qual)
    for name, division, kind, region, trade, types, small, contact, phone, qual in _rows(
        """
江苏宏图建筑劳务有限公司   | 320507 | subcontractor | east      | 主体结构劳务分包     | building municipal_road bridge water   | no  | 高峰   | 13862010201 | 施工劳务不分等级
浙江固基桩基工程有限公司   | 330106 | subcontractor | east      | 桩基工程专业分包     | bridge building tunnel                 | no  | 金永刚 | 13905710202 | 地基基础工程专业承包一级
上海沪安机电安装有限公司   | 310112 | subcontractor | east      | 机电安装专业分包     | mep building power tunnel              | no  | 蒋立新 | 13901710203 | 建筑机电安装工程专业承包一级
安徽皖绿园林绿化有限公司   | 340104 | subcontractor | east      | 苗木种植及养护分包   | landscaping municipal_road             | yes | 汪春燕 | 13955110204 | 园林绿化施工资质
北京燕京路桥工程有限公司   | 110106 | subcontractor | north     | 路面工程专业分包     | municipal_road bridge                  | no  | 郭建平 | 13801010205 | 公路路面工程专业承包一级
河北冀电电力工程有限公司   | 130104 | subcontractor | north     | 变电安装专业分包     | power mep                              | no  | 田志勇 | 13803110206 | 输变电工程专业承包二级
广东粤通隧道工程有限公司   | 440106 | subcontractor | south     | 隧道开挖及支护分包   | tunnel water                           | no  | 陈国栋 | 13802210207 | 隧道工程专业承包一级
广西八桂桥梁工程有限公司   | 450103 | subcontractor | south     | 预应力及桥面系分包   | bridge municipal_road                  | no  | 覃海波 | 13907710208 | 桥梁工程专业承包二级
湖北楚天防水工程有限公司   | 420106 | subcontractor | central   | 防水工程专业分包     | building tunnel water                  | yes | 程立伟 | 13907110209 | 防水防腐保温工程专业承包二级
四川蜀能钢结构工程有限公司 | 510107 | subcontractor | southwest | 钢结构制作安装分包   | building bridge mep power              | no  | 罗世杰 | 13908010210 | 钢结构工程专业承包一级
陕西秦川市政劳务有限公司   | 610112 | subcontractor | northwest | 管网施工劳务分包     | water municipal_road tunnel            | yes | 雷振华 | 13909110211 | 施工劳务不分等级
辽宁辽沈模板脚手架有限公司 | 210106 | subcontractor | northeast | 模板及脚手架劳务分包 | building bridge tunnel                 | no  | 于海洋 | 13904010212 | 模板脚手架专业承包
唐山燕钢钢材贸易有限公司   | 130203 | supplier      | north     | 钢筋及型钢采购       | building bridge tunnel municipal_road  | no  | 李铁军 | 13903150213 | 一般纳税人
皖江建材水泥销售有限公司   | 340202 | supplier      | east      | 水泥及商品混凝土采购 | building bridge tunnel municipal_road  | no  | 吴志成 | 13905530214 | 一般纳税人
华南中联管业有限公司       | 440604 | supplier      | south     | 球墨铸铁管及管件采购 | water municipal_road                   | no  | 邓志明 | 13902850215 | 一般纳税人
秦岭电缆制造有限公司       | 610116 | supplier      | northwest | 电力电缆及附件采购   | power mep tunnel                       | no  | 薛红军 | 13909280216 | 一般纳税人
郑州中原电气设备有限公司   | 410122 | supplier      | central   | 开关柜及变压器采购   | power mep                              | no  | 宋晓光 | 13903710217 | 一般纳税人
成都蓉城苗木有限公司       | 510124 | supplier      | southwest | 苗木及草皮采购       | landscaping                            | no  | 何春林 | 13908200218 | 一般纳税人
"""  # noqa: E501
    )
)
