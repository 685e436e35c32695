"""Reference tables of the sample city: names, counties, diagnoses, drugs, lab items, vaccines.

These give the generated values their clinical meaning (which diagnosis goes with which
department, drug and operation). Dataset and field *names* are never listed here: they come
from the contracts.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- people -------------------------------------------------------------------------------

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严武戴孔汤"
)
# rough frequency: the first surnames are far more common
SURNAME_WEIGHTS = tuple(max(0.3, 7.5 - 0.09 * i) for i in range(len(SURNAMES)))
GIVEN_MALE = (
    "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林阳"
    "建国峰亮成东文志海晨博昊然轩睿泽宏振家永兵春德"
)
GIVEN_FEMALE = (
    "芳娜敏静丽艳娟霞秀玲桂英燕萍红梅琳雪慧莉婷倩颖洁佳欣怡雨涵悦"
    "诗梦琪思彤萱妍婉晶兰凤琴云月芬玉珍荣"
)

# 5-year age bands (0-4 ... 95-99) of the resident population, in per cent
AGE_BAND_WEIGHTS = (
    4.5,
    5.5,
    6.0,
    5.5,
    5.0,
    5.5,
    7.5,
    7.5,
    6.5,
    7.0,
    8.5,
    8.0,
    6.5,
    6.0,
    5.0,
    3.0,
    2.0,
    1.0,
    0.4,
    0.1,
)

MOBILE_PREFIXES = (
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "173",
    "175",
    "176",
    "177",
    "180",
    "181",
    "182",
    "183",
    "185",
    "186",
    "187",
    "188",
    "189",
    "199",
)
LANDLINE_AREA = "0376"  # Xinyang

# area codes of residents who were issued their number elsewhere (all valid GB/T 2260 codes)
MIGRANT_AREAS = (
    "410102",
    "410105",
    "410302",
    "411302",
    "411702",
    "420102",
    "420106",
    "340102",
    "320102",
    "440305",
    "310115",
    "110105",
)
ETHNIC_MINORITIES = ("03", "02", "11", "06", "15", "08", "04", "97")


@dataclass(frozen=True)
class County:
    code: str
    name: str
    population: float  # millions, for shares
    old_code: str | None  # area code of the same place before 1998 (信阳地区 4130xx)


XINYANG = (
    County("411502", "浉河区", 0.65, "413001"),
    County("411503", "平桥区", 0.80, "413023"),
    County("411521", "罗山县", 0.50, "413028"),
    County("411522", "光山县", 0.60, "413025"),
    County("411523", "新县", 0.30, "413029"),
    County("411524", "商城县", 0.50, "413027"),
    County("411525", "固始县", 1.00, "413026"),
    County("411526", "潢川县", 0.60, "413024"),
    County("411527", "淮滨县", 0.50, "413022"),
    County("411528", "息县", 0.70, "413021"),
)
# candidates for synthetic county platforms beyond the ten of Xinyang (驻马店, 南阳)
EXTRA_COUNTY_CANDIDATES = (
    "411702",
    "411721",
    "411722",
    "411723",
    "411724",
    "411725",
    "411726",
    "411727",
    "411728",
    "411729",
    "411302",
    "411303",
    "411321",
    "411322",
    "411323",
    "411324",
    "411325",
    "411326",
    "411327",
    "411328",
    "411329",
    "411330",
    "411381",
)

# --- departments and diagnoses ------------------------------------------------------------

DEPTS = {
    "0200": "全科医疗科",
    "0301": "呼吸内科",
    "0302": "消化内科",
    "0303": "神经内科",
    "0304": "心血管内科",
    "0306": "内分泌科",
    "0401": "普通外科",
    "0403": "骨科",
    "0404": "泌尿外科",
    "0501": "妇科",
    "0502": "产科",
    "0700": "儿科",
    "1000": "眼科",
    "1100": "耳鼻咽喉科",
    "1200": "口腔科",
    "1300": "皮肤科",
    "1900": "肿瘤科",
    "2000": "急诊医学科",
    "5000": "中医科",
}
GP_DEPT = "0200"
PEDIATRIC_DEPT = "0700"
EMERGENCY_DEPT = "2000"
TCM_DEPT = "5000"

# outpatient age bands: 0-13, 14-17, 18-44, 45-64, 65+
OUT_BANDS = (0, 14, 18, 45, 65)
# inpatient age bands: <1, 1-13, 14-17, 18-44, 45-64, 65+
IP_BANDS = (0, 1, 14, 18, 45, 65)


@dataclass(frozen=True)
class Dx:
    code: str
    name: str
    dept: str
    group: str  # drug group
    weights: tuple[float, ...]  # per age band
    sex: str = ""  # "1" male only, "2" female only
    ext: str | None = None  # national clinical-version spelling (I10.x00)


OUTPATIENT_DX = (
    Dx("I10", "原发性高血压", "0304", "HTN", (0, 0, 3, 18, 24), ext="I10.x00"),
    Dx("E11.9", "2型糖尿病不伴有并发症", "0306", "DM", (0, 0, 1.5, 9, 10)),
    Dx("E78.5", "高脂血症", "0304", "CV", (0, 0, 1, 4, 4)),
    Dx("I25.1", "动脉硬化性心脏病", "0304", "CV", (0, 0, 0.2, 3, 6)),
    Dx("I63.9", "脑梗死", "0303", "CV", (0, 0, 0.1, 2, 4)),
    Dx("J06.9", "急性上呼吸道感染", "0301", "RESP", (30, 15, 12, 7, 5)),
    Dx("J20.9", "急性支气管炎", "0301", "RESP", (12, 5, 4, 4, 5)),
    Dx("J18.9", "肺炎", "0301", "RESP", (6, 2, 1.5, 2, 4)),
    Dx("J03.9", "急性扁桃体炎", "1100", "RESP", (8, 6, 3, 1, 0.5)),
    Dx("J44.9", "慢性阻塞性肺病", "0301", "RESP", (0, 0, 0.1, 2, 5)),
    Dx("K29.7", "胃炎", "0302", "GI", (1, 3, 7, 7, 5)),
    Dx("K21.9", "胃食管反流病", "0302", "GI", (0, 1, 2, 3, 3)),
    Dx("A09.9", "胃肠炎", "0302", "GI", (6, 2, 2, 1, 1)),
    Dx("K59.0", "便秘", "0302", "GI", (2, 1, 1, 1, 3)),
    Dx("R51", "头痛", "0303", "PAIN", (1, 2, 3, 2, 1), ext="R51.x00"),
    Dx("M54.5", "腰痛", "0403", "PAIN", (0, 1, 4, 6, 5)),
    Dx("M17.9", "膝关节病", "0403", "PAIN", (0, 0, 0.5, 3, 5)),
    Dx("S93.4", "踝关节扭伤", "0403", "PAIN", (1, 3, 2, 1, 0.3)),
    Dx("H52.1", "近视", "1000", "EYE", (5, 8, 2, 0.5, 0.2)),
    Dx("H25.9", "老年性白内障", "1000", "EYE", (0, 0, 0, 1, 4)),
    Dx("K02.9", "龋病", "1200", "DENT", (6, 3, 2, 1.5, 1)),
    Dx("K05.1", "慢性牙龈炎", "1200", "DENT", (0.5, 1, 2, 2, 1.5)),
    Dx("L30.9", "皮炎", "1300", "SKIN", (3, 2, 3, 2, 2)),
    Dx("L50.9", "荨麻疹", "1300", "SKIN", (2, 2, 2, 1, 1)),
    Dx("N39.0", "泌尿道感染", "0404", "URO", (0.5, 0.5, 2, 2, 3)),
    Dx("N40", "前列腺增生", "0404", "URO", (0, 0, 0, 3, 7), sex="1", ext="N40.x00"),
    Dx("N76.0", "急性阴道炎", "0501", "GYN", (0, 0.5, 4, 2, 0.5), sex="2"),
    Dx("N92.0", "月经过多", "0501", "GYN", (0, 1, 2, 1, 0), sex="2"),
    Dx("O21.0", "轻度妊娠剧吐", "0502", "OB", (0, 0, 1.5, 0, 0), sex="2"),
    Dx("Z34.9", "正常妊娠监督", "0502", "OB", (0, 0, 3, 0, 0), sex="2"),
    Dx("R50.9", "发热", "0301", "RESP", (8, 2, 1, 1, 1)),
    Dx("F32.9", "抑郁发作", "0303", "GEN", (0, 0.5, 1, 1, 0.5)),
)
# chronic diagnoses weigh more in primary care (prescription refills)
CHRONIC_LEVEL_FACTOR = {"tertiary": 1.0, "secondary": 1.4, "primary": 2.2}
CHRONIC_GROUPS = ("HTN", "DM")
# diagnoses used for injected defects
MALE_ONLY_DX = ("N40", "前列腺增生")
FEMALE_ONLY_DX = ("N76.0", "急性阴道炎")
INVALID_ICD10 = ("Z99.99", "其他依赖")
NEUTRAL_DX = ("J06.9", "急性上呼吸道感染")
NEUTRAL_IP_DX = ("J18.9", "肺炎")  # neither sex- nor age-specific
EXTERNAL_CAUSE_DX = ("W19", "跌倒")  # chapter XX: how an injury happened, never the principal
PERINATAL_DX = ("P59.9", "新生儿黄疸")  # chapter XVI: only for patients under one year


@dataclass(frozen=True)
class Op:
    code: str
    level: int
    minimally_invasive: int


@dataclass(frozen=True)
class IpDx:
    code: str
    name: str
    dept: str
    group: str
    weights: tuple[float, ...]  # per inpatient age band
    los: float  # mean length of stay in days
    sex: str = ""
    op: Op | None = None
    op_prob: float = 0.0
    newborn: bool = False


INPATIENT_DX = (
    IpDx("P59.9", "新生儿黄疸", "0700", "IP", (10, 0, 0, 0, 0, 0), 5, newborn=True),
    IpDx("P07.3", "早产儿", "0700", "IP", (4, 0, 0, 0, 0, 0), 14, newborn=True),
    IpDx("J18.9", "肺炎", "0301", "RESP", (6, 8, 2, 3, 4, 8), 8),
    IpDx("J20.9", "急性支气管炎", "0301", "RESP", (3, 5, 1, 1, 1, 2), 6),
    IpDx("A09.9", "胃肠炎", "0302", "GI", (2, 3, 1, 1, 1, 1), 4),
    IpDx(
        "K35.8",
        "急性阑尾炎",
        "0401",
        "GI",
        (0, 1.5, 3, 3, 1, 0.5),
        5,
        op=Op("47.01", 3, 1),
        op_prob=0.9,
    ),
    IpDx(
        "K80.2",
        "胆囊结石",
        "0401",
        "GI",
        (0, 0, 0.2, 2, 3, 2.5),
        6,
        op=Op("51.23", 3, 1),
        op_prob=0.8,
    ),
    IpDx(
        "K40.9",
        "腹股沟疝",
        "0401",
        "GI",
        (0, 1, 0.2, 1, 2, 2),
        4,
        op=Op("53.02", 2, 0),
        op_prob=0.9,
    ),
    IpDx(
        "S72.0",
        "股骨颈骨折",
        "0403",
        "PAIN",
        (0, 0, 0, 0.3, 1, 4),
        12,
        op=Op("81.52", 4, 0),
        op_prob=0.7,
    ),
    IpDx(
        "S82.2",
        "胫骨干骨折",
        "0403",
        "PAIN",
        (0, 0.5, 1, 2, 1.5, 0.8),
        10,
        op=Op("79.36", 3, 0),
        op_prob=0.8,
    ),
    IpDx(
        "O80",
        "单胎顺产",
        "0502",
        "OB",
        (0, 0, 0, 8, 0, 0),
        3,
        sex="2",
        op=Op("73.59", 1, 0),
        op_prob=0.9,
    ),
    IpDx(
        "O82",
        "剖宫产单胎分娩",
        "0502",
        "OB",
        (0, 0, 0, 6, 0, 0),
        5,
        sex="2",
        op=Op("74.99", 2, 0),
        op_prob=1.0,
    ),
    IpDx("N73.9", "盆腔炎", "0501", "GYN", (0, 0, 0, 1, 0.3, 0), 6, sex="2"),
    IpDx("I63.9", "脑梗死", "0303", "CV", (0, 0, 0, 0.5, 5, 10), 12),
    IpDx(
        "I21.9",
        "急性心肌梗死",
        "0304",
        "CV",
        (0, 0, 0, 0.3, 2, 3),
        9,
        op=Op("36.06", 4, 1),
        op_prob=0.6,
    ),
    IpDx(
        "I25.1",
        "冠状动脉粥样硬化性心脏病",
        "0304",
        "CV",
        (0, 0, 0, 0.3, 3, 5),
        8,
        op=Op("00.66", 4, 1),
        op_prob=0.3,
    ),
    IpDx("I50.9", "心力衰竭", "0304", "CV", (0, 0, 0, 0.1, 1, 5), 10),
    IpDx("J44.1", "慢性阻塞性肺病伴急性加重", "0301", "RESP", (0, 0, 0, 0, 2, 7), 10),
    IpDx("E11.9", "2型糖尿病", "0306", "DM", (0, 0, 0, 0.5, 2, 2), 9),
    IpDx("I10", "原发性高血压", "0304", "HTN", (0, 0, 0, 0.5, 1.5, 2), 7),
    IpDx(
        "C34.9",
        "肺恶性肿瘤",
        "1900",
        "ONC",
        (0, 0, 0, 0.1, 1.5, 2),
        14,
        op=Op("32.49", 4, 0),
        op_prob=0.2,
    ),
    IpDx(
        "C16.9",
        "胃恶性肿瘤",
        "1900",
        "ONC",
        (0, 0, 0, 0.1, 1, 1.5),
        16,
        op=Op("43.99", 4, 0),
        op_prob=0.25,
    ),
    IpDx(
        "C50.9",
        "乳腺恶性肿瘤",
        "1900",
        "ONC",
        (0, 0, 0, 0.4, 1, 0.5),
        10,
        sex="2",
        op=Op("85.41", 3, 0),
        op_prob=0.4,
    ),
    IpDx(
        "N40",
        "前列腺增生",
        "0404",
        "URO",
        (0, 0, 0, 0, 1.5, 3),
        7,
        sex="1",
        op=Op("60.29", 3, 1),
        op_prob=0.7,
    ),
    IpDx("C61", "前列腺恶性肿瘤", "0404", "ONC", (0, 0, 0, 0, 0.3, 1), 10, sex="1"),
    IpDx(
        "H25.9",
        "老年性白内障",
        "1000",
        "EYE",
        (0, 0, 0, 0, 1.5, 4),
        2,
        op=Op("13.41", 3, 1),
        op_prob=0.95,
    ),
    IpDx(
        "N20.0",
        "肾结石",
        "0404",
        "URO",
        (0, 0, 0, 1, 1.5, 0.8),
        3,
        op=Op("98.51", 2, 0),
        op_prob=0.6,
    ),
)
# secondary diagnoses of adults (none of them sex-specific), with probability for 45-64 / 65+
COMORBIDITIES = (
    ("I10", 0.25, 0.45),
    ("E11.9", 0.10, 0.18),
    ("E78.5", 0.10, 0.12),
    ("I25.1", 0.05, 0.15),
    ("K21.9", 0.04, 0.05),
    ("N18.9", 0.02, 0.06),
    ("I48.9", 0.01, 0.05),
)
DEATH_CAUSES = (
    ("I63.9", 18),
    ("I21.9", 14),
    ("C34.9", 10),
    ("J44.1", 9),
    ("I61.9", 8),
    ("C16.9", 5),
    ("C22.0", 5),
    ("I50.9", 6),
    ("J18.9", 5),
    ("E11.9", 3),
    ("V89.2", 2),
    ("W19", 2),
)
DEATH_PLACES = (
    ("1", 45),
    ("2", 3),
    ("3", 48),
    ("4", 2),
    ("9", 2),
)  # hospital, en route, home, care home, other

DISCHARGE_METHODS = (("1", 90), ("2", 3), ("3", 2.5), ("4", 3), ("9", 1.5))
DEATH_DISCHARGE_METHOD = "5"

# --- drugs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drug:
    code: str
    name: str
    group: str
    route: str  # route code
    antibiotic: bool
    price: int  # cents per unit dispensed (box, vial)
    ddd: float = 0.0  # defined daily doses per unit (antibiotics)
    qty_max: int = 3


DRUGS = (
    Drug("YP010001", "苯磺酸氨氯地平片", "HTN", "1", False, 2860),
    Drug("YP010002", "硝苯地平控释片", "HTN", "1", False, 3250),
    Drug("YP010003", "缬沙坦胶囊", "HTN", "1", False, 2410),
    Drug("YP010004", "厄贝沙坦片", "HTN", "1", False, 1980),
    Drug("YP010005", "酒石酸美托洛尔缓释片", "HTN", "1", False, 2650),
    Drug("YP010006", "氢氯噻嗪片", "HTN", "1", False, 450),
    Drug("YP020001", "盐酸二甲双胍片", "DM", "1", False, 1520),
    Drug("YP020002", "格列美脲片", "DM", "1", False, 2130),
    Drug("YP020003", "阿卡波糖片", "DM", "1", False, 4380),
    Drug("YP020004", "门冬胰岛素注射液", "DM", "5", False, 6980, qty_max=2),
    Drug("YP020005", "甘精胰岛素注射液", "DM", "5", False, 8950, qty_max=2),
    Drug("YP030001", "阿司匹林肠溶片", "CV", "1", False, 1560),
    Drug("YP030002", "阿托伐他汀钙片", "CV", "1", False, 2870),
    Drug("YP030003", "硫酸氢氯吡格雷片", "CV", "1", False, 4260),
    Drug("YP030004", "单硝酸异山梨酯缓释片", "CV", "1", False, 2310),
    Drug("YP040001", "阿莫西林胶囊", "RESP", "1", True, 1250, ddd=4.0),
    Drug("YP040002", "头孢克洛胶囊", "RESP", "1", True, 2680, ddd=3.0),
    Drug("YP040003", "阿奇霉素片", "RESP", "1", True, 1890, ddd=2.0),
    Drug("YP040004", "连花清瘟胶囊", "RESP", "1", False, 1480),
    Drug("YP040005", "复方氨酚烷胺片", "RESP", "1", False, 980),
    Drug("YP040006", "盐酸氨溴索口服溶液", "RESP", "1", False, 1620),
    Drug("YP040007", "注射用头孢曲松钠", "RESP", "2", True, 1150, ddd=0.5, qty_max=6),
    Drug("YP040008", "左氧氟沙星氯化钠注射液", "RESP", "2", True, 1840, ddd=1.0, qty_max=5),
    Drug("YP040009", "布地奈德福莫特罗吸入粉雾剂", "RESP", "9", False, 16800, qty_max=1),
    Drug("YP050001", "奥美拉唑肠溶胶囊", "GI", "1", False, 1360),
    Drug("YP050002", "铝碳酸镁咀嚼片", "GI", "1", False, 1720),
    Drug("YP050003", "蒙脱石散", "GI", "1", False, 1280),
    Drug("YP050004", "多潘立酮片", "GI", "1", False, 1540),
    Drug("YP050005", "乳果糖口服溶液", "GI", "1", False, 3260),
    Drug("YP060001", "布洛芬缓释胶囊", "PAIN", "1", False, 1130),
    Drug("YP060002", "双氯芬酸钠缓释片", "PAIN", "1", False, 1470),
    Drug("YP060003", "塞来昔布胶囊", "PAIN", "1", False, 4580),
    Drug("YP060004", "云南白药气雾剂", "PAIN", "6", False, 3650, qty_max=1),
    Drug("YP070001", "玻璃酸钠滴眼液", "EYE", "6", False, 3120, qty_max=2),
    Drug("YP070002", "左氧氟沙星滴眼液", "EYE", "6", False, 1860, qty_max=1),
    Drug("YP080001", "甲硝唑片", "DENT", "1", True, 520, ddd=1.5),
    Drug("YP080002", "复方氯己定含漱液", "DENT", "6", False, 890, qty_max=2),
    Drug("YP090001", "莫匹罗星软膏", "SKIN", "6", False, 1580, qty_max=2),
    Drug("YP090002", "氯雷他定片", "SKIN", "1", False, 1730),
    Drug("YP090003", "丁酸氢化可的松乳膏", "SKIN", "6", False, 1360, qty_max=2),
    Drug("YP100001", "盐酸坦索罗辛缓释胶囊", "URO", "1", False, 5240),
    Drug("YP100002", "非那雄胺片", "URO", "1", False, 6180),
    Drug("YP100003", "左氧氟沙星片", "URO", "1", True, 1650, ddd=2.0),
    Drug("YP110001", "硝呋太尔制霉素阴道软胶囊", "GYN", "6", False, 4320, qty_max=1),
    Drug("YP110002", "保妇康栓", "GYN", "6", False, 3580, qty_max=1),
    Drug("YP120001", "叶酸片", "OB", "1", False, 560),
    Drug("YP120002", "维生素B6片", "OB", "1", False, 320),
    Drug("YP130001", "盐酸舍曲林片", "GEN", "1", False, 4650),
    Drug("YP130002", "复方丹参滴丸", "GEN", "1", False, 2680),
    Drug("YP140001", "0.9%氯化钠注射液", "IP", "2", False, 320, qty_max=8),
    Drug("YP140002", "5%葡萄糖注射液", "IP", "2", False, 350, qty_max=6),
    Drug("YP140003", "注射用头孢呋辛钠", "IP", "2", True, 1380, ddd=0.33, qty_max=8),
    Drug("YP140004", "注射用哌拉西林钠他唑巴坦钠", "IP", "2", True, 4260, ddd=0.3, qty_max=8),
    Drug("YP140005", "注射用奥美拉唑钠", "IP", "3", False, 1950, qty_max=6),
    Drug("YP140006", "低分子量肝素钙注射液", "IP", "5", False, 2860, qty_max=6),
    Drug("YP140007", "甲钴胺注射液", "IP", "4", False, 680, qty_max=6),
    Drug("YP140008", "氯化钾注射液", "IP", "2", False, 210, qty_max=6),
    Drug("YP150001", "注射用紫杉醇", "ONC", "2", False, 98000, qty_max=2),
    Drug("YP150002", "盐酸昂丹司琼注射液", "ONC", "3", False, 2560, qty_max=4),
)
# probability that an outpatient visit of a drug group gets a prescription, and its lab panels
GROUP_RX_PROB = {
    "HTN": 0.95,
    "DM": 0.95,
    "CV": 0.9,
    "RESP": 0.85,
    "GI": 0.8,
    "PAIN": 0.7,
    "EYE": 0.5,
    "DENT": 0.4,
    "SKIN": 0.8,
    "URO": 0.8,
    "GYN": 0.8,
    "OB": 0.5,
    "GEN": 0.7,
    "IP": 1.0,
    "ONC": 1.0,
}

# --- laboratory -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LabItem:
    code: str
    name: str
    unit: str | None  # None: qualitative
    low: float | None
    high: float | None
    mean: float = 0.0
    sd: float = 0.0
    decimals: int = 1


LAB_PANELS = {
    "CBC": (
        LabItem("WBC", "白细胞计数", "10^9/L", 3.5, 9.5, 6.6, 2.2, 2),
        LabItem("RBC", "红细胞计数", "10^12/L", 3.8, 5.8, 4.7, 0.55, 2),
        LabItem("HGB", "血红蛋白", "g/L", 115, 175, 138, 17, 0),
        LabItem("PLT", "血小板计数", "10^9/L", 125, 350, 228, 62, 0),
        LabItem("NEUT%", "中性粒细胞百分比", "%", 40, 75, 61, 11, 1),
        LabItem("LYMPH%", "淋巴细胞百分比", "%", 20, 50, 31, 9, 1),
        LabItem("HCT", "红细胞压积", "%", 35, 50, 42, 4.5, 1),
        LabItem("MCV", "平均红细胞体积", "fL", 82, 100, 90, 5.5, 1),
    ),
    "BIO": (
        LabItem("ALT", "丙氨酸氨基转移酶", "U/L", 9, 50, 29, 15, 0),
        LabItem("AST", "天门冬氨酸氨基转移酶", "U/L", 15, 40, 26, 10, 0),
        LabItem("TBIL", "总胆红素", "μmol/L", 0, 21, 12, 5, 1),
        LabItem("CREA", "肌酐", "μmol/L", 57, 111, 80, 21, 0),
        LabItem("UREA", "尿素", "mmol/L", 3.1, 8.0, 5.3, 1.6, 2),
        LabItem("UA", "尿酸", "μmol/L", 208, 428, 335, 85, 0),
        LabItem("GLU", "葡萄糖", "mmol/L", 3.9, 6.1, 5.7, 1.6, 2),
        LabItem("K", "钾", "mmol/L", 3.5, 5.3, 4.2, 0.42, 2),
        LabItem("NA", "钠", "mmol/L", 137, 147, 141, 3.2, 1),
    ),
    "LIP": (
        LabItem("TC", "总胆固醇", "mmol/L", 2.8, 5.2, 4.7, 0.9, 2),
        LabItem("TG", "甘油三酯", "mmol/L", 0.56, 1.7, 1.5, 0.7, 2),
        LabItem("HDL-C", "高密度脂蛋白胆固醇", "mmol/L", 1.04, 2.0, 1.3, 0.3, 2),
        LabItem("LDL-C", "低密度脂蛋白胆固醇", "mmol/L", 1.5, 3.4, 2.9, 0.8, 2),
    ),
    "URI": (
        LabItem("PRO", "尿蛋白", None, None, None),
        LabItem("GLU-U", "尿葡萄糖", None, None, None),
        LabItem("BLD", "尿隐血", None, None, None),
        LabItem("KET", "尿酮体", None, None, None),
        LabItem("U-WBC", "尿白细胞计数", "/μL", 0, 28, 12, 12, 0),
    ),
    "CRP": (LabItem("CRP", "C反应蛋白", "mg/L", 0, 10, 6, 9, 1),),
    "HBA1C": (LabItem("HBA1C", "糖化血红蛋白", "%", 4.0, 6.0, 7.0, 1.4, 1),),
}
QUALITATIVE_NORMAL = "阴性"
QUALITATIVE_ABNORMAL = ("+", "2+", "弱阳性")

# --- vaccines -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vaccine:
    code: str
    name: str
    min_days: int  # age range in days
    max_days: int
    doses: int
    sex: str = ""


_Y = 365
VACCINES = (
    Vaccine("0101", "乙肝疫苗", 0, 1 * _Y, 3),
    Vaccine("0201", "卡介苗", 0, 120, 1),
    Vaccine("0301", "脊灰灭活疫苗", 60, 4 * _Y + 180, 4),
    Vaccine("0401", "百白破疫苗", 90, 6 * _Y + 180, 4),
    Vaccine("0501", "白破疫苗", 6 * _Y, 7 * _Y, 1),
    Vaccine("1201", "麻腮风疫苗", 240, 2 * _Y, 2),
    Vaccine("1401", "乙脑减毒活疫苗", 240, 6 * _Y + 180, 2),
    Vaccine("1601", "A群流脑多糖疫苗", 180, 1 * _Y + 180, 2),
    Vaccine("1701", "A群C群流脑多糖疫苗", 3 * _Y, 6 * _Y + 180, 2),
    Vaccine("1901", "甲肝减毒活疫苗", 540, 2 * _Y + 180, 1),
    Vaccine("5101", "流感疫苗", 3 * _Y, 100 * _Y, 2),
    Vaccine("2801", "人用狂犬病疫苗", 2 * _Y, 100 * _Y, 5),
    Vaccine("5501", "双价人乳头瘤病毒疫苗", 9 * _Y, 45 * _Y, 3, sex="2"),
    Vaccine("0102", "乙肝疫苗(成人)", 18 * _Y, 60 * _Y, 3),
)
