"""Owner forms (Flask-WTF: CSRF on every one)."""

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms.fields.choices import SelectChoice
from wtforms import BooleanField, EmailField, IntegerField, PasswordField, RadioField, SelectField, StringField
from wtforms.validators import (
    Email,
    EqualTo,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from portal import formatting
from portal.models import RouterConnection, SaleEmail
from portal.payments import currencies, served_countries
from portal.routeros import units
from portal.routeros.client import has_control_character
from portal.services.owners import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from portal.services.routers import HOST_MAX_LENGTH, HOST_PATTERN

CHARSET_CHOICES = [
    SelectChoice("lower", _l("abcd (minuscules)")),
    SelectChoice("upper", _l("ABCD (majuscules)")),
    SelectChoice("upplow", _l("aBcD (minuscules et majuscules)")),
    SelectChoice("mix", _l("5ab2c34d (chiffres et minuscules)")),
    SelectChoice("mix1", _l("5AB2C34D (chiffres et majuscules)")),
    SelectChoice("mix2", _l("5aB2c34D (chiffres, minuscules et majuscules)")),
    SelectChoice("num", _l("1234 (chiffres seulement, mode voucher)")),
]
CONNECTION_CHOICES = [SelectChoice(RouterConnection.DIRECT.value, _l("Directe (API / api-ssl)")),
                      SelectChoice(RouterConnection.TUNNEL.value, _l("Tunnel Kiosque (WireGuard, RouterOS 7)"))]
MODE_CHOICES = [SelectChoice("vc", _l("Voucher : code unique (identifiant = mot de passe)")),
                SelectChoice("up", _l("Identifiant et mot de passe"))]
HOST = Regexp(HOST_PATTERN, message=_l("Adresse IP ou nom d'hôte attendu."))
NAME = Regexp(r"^[^\x00-\x1f]+$", message=_l("Caractères non autorisés."))


def currency_choices(form, field) -> list[SelectChoice]:
    """The currencies the payment providers charge in, named in the page's language.

    A currency saved before stays selectable, so that saving other changes never swaps it.
    """
    saved = field.object_data
    codes = currencies() + ((saved,) if saved and saved not in currencies() else ())
    names = get_locale().currencies
    return [SelectChoice(code, f"{code} · {names.get(code, code)}") for code in codes]


def no_control_character(form, field):
    """API credentials travel to the router as they are: no CR, LF, NUL or other control character."""
    if field.data and has_control_character(field.data):
        raise ValidationError(_l("Caractère de contrôle refusé (retour à la ligne, tabulation…)."))


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[InputRequired(), Length(max=254)])
    password = PasswordField(_l("Mot de passe"), validators=[InputRequired(), Length(max=200)])


class ForgotPasswordForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[InputRequired(), Length(max=254)])


class NewPasswordForm(FlaskForm):
    password = PasswordField(_l("Nouveau mot de passe"), validators=[
        InputRequired(), Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH,
                                message=_l("Entre %(min)d et %(max)d caractères."))])
    confirm = PasswordField(_l("Le même, une seconde fois"), validators=[
        InputRequired(), EqualTo("password", message=_l("Les deux mots de passe diffèrent."))])


class ProfileForm(FlaskForm):
    name = StringField(_l("Votre nom"), validators=[Optional(), Length(max=120), NAME])
    locale = SelectField(_l("Langue des e-mails"), choices=[SelectChoice("fr", "Français"),
                                                            SelectChoice("en", "English")])
    sale_email = SelectField(_l("E-mails de vente"), choices=[
        SelectChoice(SaleEmail.EACH.value, _l("Un e-mail à chaque vente")),
        SelectChoice(SaleEmail.DAILY.value, _l("Un résumé par jour, le matin, des ventes de la veille"))])


class EmailChangeForm(FlaskForm):
    email = EmailField(_l("Nouvelle adresse e-mail"), validators=[InputRequired(), Email(), Length(max=254)])
    current_password = PasswordField(_l("Votre mot de passe actuel"), validators=[InputRequired(), Length(max=200)])


class PasswordChangeForm(NewPasswordForm):
    current_password = PasswordField(_l("Votre mot de passe actuel"), validators=[InputRequired(), Length(max=200)])


class RouterForm(FlaskForm):
    name = StringField(_l("Nom"), validators=[InputRequired(), Length(max=80), NAME])
    connection = RadioField(_l("Connexion au routeur"), choices=CONNECTION_CHOICES, default=RouterConnection.DIRECT.value)
    # Through the tunnel Kiosque uses the router's tunnel address: the host may stay blank.
    host = StringField(_l("Adresse du routeur (IP ou nom)"), validators=[Length(max=HOST_MAX_LENGTH)])
    port = IntegerField(_l("Port de l'API"), default=8728, validators=[InputRequired(), NumberRange(1, 65535)])
    use_tls = BooleanField(_l("Utiliser api-ssl (TLS)"))
    tls_verify = BooleanField(_l("Vérifier le certificat du routeur"), default=True)
    api_username = StringField(_l("Utilisateur de l'API"),
                               validators=[InputRequired(), Length(max=80), NAME, no_control_character])
    api_password = PasswordField(_l("Mot de passe de l'API"),
                                 validators=[Optional(), Length(max=200), no_control_character])
    hotspot_server = StringField(_l("Serveur hotspot"), default="all",
                                 validators=[InputRequired(), Length(max=80), NAME])
    dns_name = StringField(_l("Nom DNS du hotspot (ex. wifi.net)"),
                           validators=[Optional(), Length(max=HOST_MAX_LENGTH), HOST])
    user_mode = SelectField(_l("Type de ticket"), choices=MODE_CHOICES, default="vc")
    name_length = IntegerField(_l("Longueur du code"), default=6, validators=[InputRequired(), NumberRange(3, 8)])
    charset = SelectField(_l("Caractères"), choices=CHARSET_CHOICES, default="lower")
    prefix = StringField(_l("Préfixe (facultatif)"), validators=[
        Optional(), Length(max=6), Regexp(r"^[A-Za-z0-9]*$", message=_l("Lettres et chiffres seulement."))])
    currency = SelectField(_l("Devise"), default="XOF", choices=currency_choices)
    country = SelectField(_l("Pays du hotspot"), default="bj")
    notify_email = EmailField(_l("E-mail pour les notifications de vente"),
                              validators=[Optional(), Email(), Length(max=254)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = [(code, formatting.country_name(code)) for code in served_countries()]
        self.country.choices = sorted(names, key=lambda choice: choice[1])

    def validate_host(self, field):
        if field.data:
            HOST(self, field)
        elif self.connection.data == RouterConnection.DIRECT.value:
            raise ValidationError(_l("Adresse obligatoire pour une connexion directe."))

    def validate_charset(self, field):
        if field.data == "num" and self.user_mode.data != "vc":
            raise ValidationError(_l("Ce choix de caractères n'est possible qu'en mode voucher."))

    def values(self) -> dict:
        data = {name: getattr(self, name).data for name in (
            "name", "host", "port", "use_tls", "tls_verify", "api_username", "hotspot_server", "dns_name",
            "user_mode", "name_length", "charset", "prefix", "currency", "country", "notify_email")}
        for name in ("name", "host", "api_username", "hotspot_server", "dns_name", "prefix", "notify_email"):
            data[name] = (data[name] or "").strip()
        data["connection"] = RouterConnection(self.connection.data)
        return data


class PlanForm(FlaskForm):
    label = StringField(_l("Nom du forfait"), validators=[InputRequired(), Length(max=60), NAME])
    profile = SelectField(_l("Profil Mikhmon"), choices=[], validate_choice=False,
                          validators=[InputRequired(message=_l("Choisissez un profil du routeur."))])
    price = IntegerField(_l("Prix"), validators=[InputRequired(), NumberRange(min=1, max=10_000_000)])
    currency = SelectField(_l("Devise"), default="XOF", choices=currency_choices)
    time_limit = StringField(_l("Durée de connexion (ex. 30m, 1h, 1d2h, 1w ; vide = illimitée)"),
                             validators=[Optional(), Length(max=20)])
    data_limit = StringField(_l("Volume de données (ex. 500M, 1G ; 0 = illimité)"), default="0",
                             validators=[Optional(), Length(max=20)])
    active = BooleanField(_l("En vente"), default=True)
    position = IntegerField(_l("Ordre d'affichage"), default=0, validators=[Optional(), NumberRange(0, 1000)])

    def validate_time_limit(self, field):
        if field.data and field.data.strip():
            try:
                seconds = units.parse_duration(field.data.strip())
            except ValueError:
                raise ValidationError(_l("Durée MikroTik attendue, par exemple 30m, 1h, 1d2h ou 1w."))
            field.data = units.format_duration(seconds) if seconds else ""

    def validate_data_limit(self, field):
        try:
            units.parse_bytes(field.data.strip())
        except ValueError:
            raise ValidationError(_l("Volume attendu, par exemple 0, 500M ou 1G."))

    def values(self) -> dict:
        return {
            "label": self.label.data.strip(), "profile": self.profile.data, "price": self.price.data,
            "currency": self.currency.data, "time_limit": self.time_limit.data or "",
            "data_limit_bytes": units.parse_bytes((self.data_limit.data or "0").strip()), "active": self.active.data,
            "position": self.position.data or 0,
        }
