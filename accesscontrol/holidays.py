"""Public holidays for a few countries, picked by the site's time zone.

Enough to give a new site a working holiday calendar without a network
lookup; operators add regional days and company days themselves. Each rule is
a fixed date, a shift from Easter Sunday, or the n-th weekday of a month
(n = -1 for the last one).
"""

import calendar
import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Fixed:
    month: int
    day: int


@dataclass(frozen=True)
class FromEaster:
    days: int


@dataclass(frozen=True)
class NthWeekday:
    month: int
    weekday: int  # 0 = Monday, as date.weekday()
    n: int


Rule = Fixed | FromEaster | NthWeekday

MON, THU = 0, 3

COMMON = {
    "New Year's Day": Fixed(1, 1),
    "Good Friday": FromEaster(-2),
    "Easter Monday": FromEaster(1),
    "Christmas Day": Fixed(12, 25),
    "Boxing Day": Fixed(12, 26),
}

COUNTRIES: dict[str, dict[str, Rule]] = {
    "Germany": {
        "Neujahr": Fixed(1, 1),
        "Karfreitag": FromEaster(-2),
        "Ostermontag": FromEaster(1),
        "Tag der Arbeit": Fixed(5, 1),
        "Christi Himmelfahrt": FromEaster(39),
        "Pfingstmontag": FromEaster(50),
        "Tag der Deutschen Einheit": Fixed(10, 3),
        "1. Weihnachtstag": Fixed(12, 25),
        "2. Weihnachtstag": Fixed(12, 26),
    },
    "Spain": {
        "Año Nuevo": Fixed(1, 1),
        "Epifanía del Señor": Fixed(1, 6),
        "Viernes Santo": FromEaster(-2),
        "Fiesta del Trabajo": Fixed(5, 1),
        "Asunción de la Virgen": Fixed(8, 15),
        "Fiesta Nacional de España": Fixed(10, 12),
        "Todos los Santos": Fixed(11, 1),
        "Día de la Constitución": Fixed(12, 6),
        "Inmaculada Concepción": Fixed(12, 8),
        "Navidad": Fixed(12, 25),
    },
    "France": {
        "Jour de l'an": Fixed(1, 1),
        "Lundi de Pâques": FromEaster(1),
        "Fête du Travail": Fixed(5, 1),
        "Victoire 1945": Fixed(5, 8),
        "Ascension": FromEaster(39),
        "Lundi de Pentecôte": FromEaster(50),
        "Fête nationale": Fixed(7, 14),
        "Assomption": Fixed(8, 15),
        "Toussaint": Fixed(11, 1),
        "Armistice 1918": Fixed(11, 11),
        "Noël": Fixed(12, 25),
    },
    "Netherlands": {
        "Nieuwjaarsdag": Fixed(1, 1),
        "Goede Vrijdag": FromEaster(-2),
        "Tweede Paasdag": FromEaster(1),
        "Koningsdag": Fixed(4, 27),
        "Bevrijdingsdag": Fixed(5, 5),
        "Hemelvaartsdag": FromEaster(39),
        "Tweede Pinksterdag": FromEaster(50),
        "Eerste Kerstdag": Fixed(12, 25),
        "Tweede Kerstdag": Fixed(12, 26),
    },
    "United Kingdom": {
        "New Year's Day": Fixed(1, 1),
        "Good Friday": FromEaster(-2),
        "Easter Monday": FromEaster(1),
        "Early May bank holiday": NthWeekday(5, MON, 1),
        "Spring bank holiday": NthWeekday(5, MON, -1),
        "Summer bank holiday": NthWeekday(8, MON, -1),
        "Christmas Day": Fixed(12, 25),
        "Boxing Day": Fixed(12, 26),
    },
    "United States": {
        "New Year's Day": Fixed(1, 1),
        "Martin Luther King Jr. Day": NthWeekday(1, MON, 3),
        "Presidents' Day": NthWeekday(2, MON, 3),
        "Memorial Day": NthWeekday(5, MON, -1),
        "Juneteenth": Fixed(6, 19),
        "Independence Day": Fixed(7, 4),
        "Labor Day": NthWeekday(9, MON, 1),
        "Columbus Day": NthWeekday(10, MON, 2),
        "Veterans Day": Fixed(11, 11),
        "Thanksgiving Day": NthWeekday(11, THU, 4),
        "Christmas Day": Fixed(12, 25),
    },
}

TIME_ZONE_COUNTRIES = {
    "Europe/Berlin": "Germany",
    "Europe/Madrid": "Spain",
    "Europe/Paris": "France",
    "Europe/Amsterdam": "Netherlands",
    "Europe/London": "United Kingdom",
    "America/New_York": "United States",
    "America/Chicago": "United States",
    "America/Denver": "United States",
    "America/Los_Angeles": "United States",
}


def easter_sunday(year: int) -> dt.date:
    """Western (Gregorian) Easter, by the anonymous Gregorian algorithm."""
    golden = year % 19
    century, year_of_century = divmod(year, 100)
    leap_centuries, century_rest = divmod(century, 4)
    correction = (century + 8) // 25
    moon_correction = (century - correction + 1) // 3
    epact = (19 * golden + century - leap_centuries - moon_correction + 15) % 30
    leap_years, year_rest = divmod(year_of_century, 4)
    weekday_shift = (32 + 2 * century_rest + 2 * leap_years - epact - year_rest) % 7
    late = (golden + 11 * epact + 22 * weekday_shift) // 451
    month, day = divmod(epact + weekday_shift - 7 * late + 114, 31)
    return dt.date(year, month, day + 1)


def rule_date(rule: Rule, year: int) -> dt.date:
    if isinstance(rule, Fixed):
        return dt.date(year, rule.month, rule.day)
    if isinstance(rule, FromEaster):
        return easter_sunday(year) + dt.timedelta(days=rule.days)
    weeks = calendar.monthcalendar(year, rule.month)
    days = [week[rule.weekday] for week in weeks if week[rule.weekday]]
    return dt.date(year, rule.month, days[rule.n - 1 if rule.n > 0 else rule.n])


def country_for_time_zone(time_zone: str) -> str | None:
    return TIME_ZONE_COUNTRIES.get(time_zone)


def public_holidays(time_zone: str, year: int) -> list[tuple[dt.date, str]]:
    """The holidays of the country of ``time_zone`` (or a common set), sorted by date."""
    country = country_for_time_zone(time_zone)
    rules = COUNTRIES[country] if country else COMMON
    return sorted((rule_date(rule, year), name) for name, rule in rules.items())
