/*
 * detect.c — structured identifiers and order elements in normalized text
 * (see detect.h).
 *
 * Every detector is a PCRE2 pattern (JIT-compiled once, with its capture
 * groups read by C code: NAM structure, date validity, name stop words…).
 * Running two dozen patterns over the whole text would cost milliseconds per
 * 100 KB, so each pattern is only tried where it can match:
 *   - at the keywords that start it ("Mme", "dossier", "pharmacie",
 *     "téléconsultation"…), found in one pass by Hyperscan as plain caseless
 *     literals (Hyperscan is several times slower with \b and start-of-match
 *     tracking, so the word boundary before a keyword is checked in C);
 *   - at the numbers, found by a plain C loop, by the shape of each number
 *     ("819-…" a phone, "3 janvier 1946" a date, "80 mg" a dose…).
 * Labels ("Télécopieur", "NAM", "DDN") are keywords too, only recorded: a
 * phone number, a NAM or a date looks up the nearest one before it.
 * A pattern is tried from its trigger, or from up to `back` bytes before it
 * (PCRE2 offset limit: the match starts no later than the trigger).
 *
 * Thread safety: everything compiled is immutable; each detect_scan call has
 * its own pcre2_match_data and match context, and takes a Hyperscan scratch
 * from a mutex-protected pool (cloned when the pool is empty).
 */
#include "autoconfig.h"
#include "detect.h"
#include "util.h"

#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hs.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- detectors ---- */

enum dp_role {
	R_KW,    /* tried at its keywords (Hyperscan) */
	R_NUM,   /* tried at the numbers whose shape fits (see number_at()) */
	R_LABEL, /* keywords only: recorded, then looked up before a value (label_before()) */
};

enum dp_id {
	LB_PHONE = 0, /* labels: keywords only, recorded as events */
	LB_PHONE_SHORT,
	LB_FAX,
	LB_FAX_SHORT,
	LB_NAM,
	LB_DOB,
	SP_TELECONSULT,
	SP_CONTACT_CUE,
	SP_PROFESSION,
	PC_PHONE,
	PC_NAM,
	PC_DATE_ISO,
	PC_DATE_NUM,
	PC_DATE_DMY,
	PC_DATE_MDY,
	PC_AGE_ANS,
	PC_AGE_EN,
	PC_ADDR_FR,
	PC_ADDR_EN,
	PC_FORM_AH,
	PC_FILE_NO,
	PC_LICENCE,
	PC_AGE_LABEL,
	PC_PERSON,
	PC_DOCTOR,
	PC_PRESCRIBER_LABEL,
	PC_PATIENT_LABEL,
	PC_PATIENT_LABEL_SHORT,
	PC_ORDER_FOR,
	PC_PHARMACY_FR,
	PC_PHARMACY_EN,
	PC_PHARMACY_BRAND,
	PC_RCPT_LABEL,
	PC_PARENT_LABEL,
	PC_PARENT_LABEL_SHORT,
	PC_POSOLOGY, /* no pattern of its own: a run of PO_ITEM */
	PO_ITEM,     /* one posology item: dose, form, route, frequency, renewal */
	DP_COUNT
};

#define CI 1 /* caseless */

struct dp {
	enum dp_id id;
	enum dp_role role;
	int flags;
	unsigned back;     /* R_KW: how far before its keyword a match may start */
	const char *kw;    /* R_KW: keywords, '|'-separated, any case */
	const char *kw_cs; /* R_KW: keywords, '|'-separated, exact case */
	const char *re;
};

/* Building blocks.  Text is normalized: no accents, one space between words. */
#define NO "n(?:o|\xc2\xb0|\xc2\xba|um|umero)?\\.?"
/* A name word: capital, then letters; hyphenated / apostrophe parts. */
#define NW "[A-Z](?:[A-Za-z]+|'[A-Za-z]+)(?:['\\-][A-Za-z]+)*"
#define NAME                                                                                       \
	"((?:[A-Z]\\.(?:-?[A-Z]\\.)? )?" NW "(?: (?:(?:de|du|des|da|di|van|von|le|la|de la) )?" NW \
	"){0,2})"
#define HONORIFIC                                                                                  \
	"(?:(?i:madame|mademoiselle|monsieur|mme|mlle|mmes)\\.?|Mrs?\\.?|Ms\\.?|Miss|MM?\\.)"
#define HONORIFIC_KW "madame|mademoiselle|monsieur|mme|mlle|mmes"
#define HONORIFIC_KW_CS "Mr|Mrs|Ms|Miss|M.|MM."
#define DOCTOR "(?:Dre?|DRE?|(?i:docteure?))\\.?"
#define MONTHS                                                                                     \
	"janvier|january|janv|jan|fevrier|fevr|fev|february|feb|mars|march|mar|avril|avr|april|"   \
	"apr|mai|may|juin|june|jun|juillet|juil|july|jul|aout|august|aug|septembre|september|"     \
	"sept|sep|octobre|october|oct|novembre|november|nov|decembre|december|dec"
#define YEAR "((?:18|19|20)[0-9]{2})"
#define STRENGTH                                                                                   \
	"[0-9]{1,5}(?:[.,][0-9]{1,3})? "                                                           \
	"?(?:(?:mg|mcg|ug|\xce\xbcg|\xc2\xb5g|g|ml|cc|ui|iu|unites?|"                              \
	"units?|meq|mmol)"                                                                         \
	"(?:/(?:ml|kg|h|j|jour|day|24 ?h))?\\b|%)"
#define FORM                                                                                       \
	"[0-9]{1,3}(?:[.,/][0-9]{1,2})? "                                                          \
	"?(?:co|cos|comp|cp|cps|comprimes?|caps|capsules?|gelules?|"                               \
	"tabs?|tablets?|gouttes?|gtt|gttes|bouffees?|puffs?|inh|inhalations?|supp|suppositoires?|" \
	"vaporisations?|sprays?)\\b"
#define RENEW                                                                                      \
	"(?:ren|renouv|renouvellements?|renouvelable|refills?|repeats?|mitte)\\b\\.? ?[:#x]? ?"    \
	"[0-9]{1,2}\\b(?: ?(?:mois|fois|x|months?|times)\\b)?"
#define QUAL                                                                                       \
	"(?:po|per "                                                                               \
	"os|sc|s/c|im|iv|sl|ir|top|inh|die|id|bid|tid|qid|qhs|hs|prn|qd|qod|qam|qpm|stat|"         \
	"q ?[0-9]{1,2}(?:-[0-9]{1,2})? ?h|aux [0-9]{1,2}(?:-[0-9]{1,2})? ?h(?:eures)?|au besoin|"  \
	"au coucher|le matin|le soir|matin et soir|avant les repas|apres les repas|en mangeant|"   \
	"(?:[0-9]{1,2}|une?|deux|trois|quatre|cinq|six) ?(?:fois|x) ?(?:par |/ ?|a |au )?"         \
	"(?:jour|j|semaine|sem|mois|24 ?h)|x ?[0-9]{1,3} ?(?:jours?|j|sem|semaines?|mois|days?|"   \
	"weeks?|months?)|(?:pendant|durant|for) [0-9]{1,3} ?(?:jours?|j|sem|semaines?|mois|days?|" \
	"weeks?|months?)|once (?:daily|a day)|twice (?:daily|a day)|(?:three|four|[0-9]) times "   \
	"(?:a|per) day|daily|every [0-9]{1,2}(?:-[0-9]{1,2})? ?(?:hours?|h)|at bedtime|as needed|" \
	"renouvelable|non renouvelable|qte|quantite|qty|quantity|dispense|refills?)\\b|"           \
	"(?:p\\.o\\.|s\\.c\\.|i\\.m\\.|i\\.v\\.|s\\.l\\.|d\\.i\\.e\\.|b\\.i\\.d\\.|t\\.i\\.d\\.|"  \
	"q\\.i\\.d\\.|h\\.s\\.|p\\.r\\.n\\.|q\\.d\\.)"
/* PO_ITEM: the groups tell which kind of posology item matched. */
enum { PO_G_STRENGTH = 1, PO_G_FORM, PO_G_RENEW, PO_G_QUAL };

#define PRESCRIBER_LABEL                                                                           \
	"prescripteur|prescriptrice|prescrit par|prescrite par|medecin traitant|"                  \
	"medecin prescripteur|medecin de famille|prescribed by|prescriber|prescribing physician|"  \
	"signe par|signed by|attending physician|family physician"
#define PATIENT_LABEL                                                                              \
	"nom du patient|nom de la patiente|nom de l'usager|nom de l'usagere|nom du beneficiaire|"  \
	"nom de la beneficiaire|nom et prenom|nom, prenom|prenom et nom|patient name|"             \
	"patient's name|name of patient"
#define PATIENT_LABEL_SHORT                                                                        \
	"patient|patiente|usager|usagere|beneficiaire|client|cliente|nom|prenom|name|first name|"  \
	"last name|surname|given name|nom de famille"
#define ORDER_FOR "ordonnance|prescription|requete|requisition|rx|demande"
#define RCPT_LABEL                                                                                 \
	"destinataire ?:|a l'attention de|a l'att\\.? de|att\\. ?:|attn\\.? ?:|att ?:|attention "  \
	"?:|"                                                                                      \
	"to the attention of"
#define PARENT_LABEL                                                                               \
	"nom de la mere|nom du pere|nom de sa mere|nom de son pere|nom et prenom de la mere|"      \
	"nom et prenom du pere|prenom et nom de la mere|prenom et nom du pere|prenom de la mere|"  \
	"prenom du pere|mother's name|mother's maiden name|father's name|name of the mother|"      \
	"name of the father|name of mother|name of father"
#define PROFESSIONS                                                                                \
	"medecin|infirmiere praticienne specialisee|infirmier praticien specialise|"               \
	"infirmiere clinicienne|infirmier clinicien|infirmiere|infirmier|pharmacienne|"            \
	"pharmacien|sage-femme|sages-femmes|dentiste|omnipraticienne|omnipraticien|physician|"     \
	"nurse practitioner|registered nurse|nurse|pharmacist|midwife|dentist|family doctor|"      \
	"chirurgienne|chirurgien|psychiatre|pediatre|gynecologue|inhalotherapeute|"                \
	"travailleuse sociale|travailleur social"
#define PROFESSIONS_CS "MD|IPS|IPSSA|IPSPL|IPSPG|IPSSM|RN"
#define BRANDS                                                                                     \
	"Jean Coutu|Pharmaprix|Uniprix|Familiprix|Proxim|Shoppers Drug Mart|Rexall|Acces "         \
	"pharma|PJC"

static const struct dp patterns[] = {
    /* ---- labels: a phone number, a NAM or a date of birth just after one
     * of these is labelled ---- */
    {LB_PHONE, R_LABEL, CI, 0,
     "tel|telephone|phone|cell|cellulaire|mobile|portable|bureau|domicile|pagette|pager", NULL,
     NULL},
    {LB_PHONE_SHORT, R_LABEL, 0, 0, NULL, "T :|T:|T.|C :|C:|P :|P:", NULL},
    {LB_FAX, R_LABEL, CI, 0, "telecopieur|telecopie|telecop|telec|fax|facsimile|fac-simile|telefax",
     NULL, NULL},
    {LB_FAX_SHORT, R_LABEL, 0, 0, NULL, "F :|F:|F.", NULL},
    {LB_NAM, R_LABEL, CI, 0,
     "nam|ramq|carte soleil|hin|hcn|health card|health insurance|assurance maladie|"
     "assurance-maladie",
     NULL, NULL},
    {LB_DOB, R_LABEL, CI, 0,
     "ddn|d.d.n|d d.n|d.dn|d.n|dob|d.o.b|date de naissance|date de naiss|naissance|ne le|nee "
     "le|ne(e) le|"
     "nee en|ne en|date of birth|birth date|birthdate|born on|born",
     NULL, NULL},

    /* ---- spans: the match is the finding ---- */
    {SP_TELECONSULT, R_KW, CI, 0, "teleconsult|tele-consult|tele consult", NULL,
     "\\btele[ \\-]?consultations?\\b"},
    {SP_CONTACT_CUE, R_KW, CI, 0,
     "me joindre|me rejoindre|joignable|rejoignable|en cas d'urgence|en urgence au|"
     "valeur critique|valeurs critiques|resultat critique|resultats critiques|critical value|"
     "critical result|reach me|contact me|can be reached|urgent contact|in case of emergency",
     NULL,
     "\\b(?:me (?:re)?joindre|(?:re)?joignable|en cas d'urgence|en urgence au|"
     "valeurs? critiques?|resultats? critiques?|critical (?:values?|results?)|reach me|"
     "contact me (?:at|on)|can be reached|urgent contact|in case of emergency)\\b"},
    {SP_PROFESSION, R_KW, CI, 0, PROFESSIONS "|m.d", PROFESSIONS_CS,
     "\\b(?:medecin(?: (?:de famille|specialiste|omnipraticien(?:ne)?|traitant|resident(?:e)?))?|"
     "(?:" PROFESSIONS ")\\b|m\\.d\\b\\.?|(?-i:(?:MD|IPS|IPSSA|IPSPL|IPSPG|IPSSM|RN)\\b))"},

    /* ---- numbers ---- */
    {PC_PHONE, R_NUM, 0, 0, NULL, NULL,
     "(?:\\+ ?1[ .\\-]?|\\b1[ .\\-])?(?:\\(([0-9]{3})\\) ?|\\b([0-9]{3})[ .\\-]?)([0-9]{3})"
     "[ .\\-]?([0-9]{4})\\b(?: ?,? ?(?i:poste|ext|extension|x|p)\\.? ?([0-9]{1,6})\\b)?"},
    {PC_NAM, R_NUM, 0, 0, NULL, NULL,
     "\\b([A-Za-z]{4})[ \\-]?([0-9]{4})[ \\-]?([0-9]{2})[ \\-]?([0-9]{2}\\b|[A-Za-z]{2}\\b|"
     "[*?_#]{2})"},
    {PC_DATE_ISO, R_NUM, 0, 0, NULL, NULL, "\\b" YEAR "[\\-/.]([0-9]{1,2})[\\-/.]([0-9]{1,2})\\b"},
    {PC_DATE_NUM, R_NUM, 0, 0, NULL, NULL, "\\b([0-9]{1,2})[\\-/.]([0-9]{1,2})[\\-/.]" YEAR "\\b"},
    {PC_DATE_DMY, R_NUM, CI, 0, NULL, NULL,
     "\\b(1er|[0-9]{1,2})(?:st|nd|rd|th|e)? (" MONTHS ")\\.?,? " YEAR "\\b"},
    {PC_DATE_MDY, R_NUM, CI, 0, NULL, NULL,
     "\\b(" MONTHS ")\\.? ([0-9]{1,2})(?:st|nd|rd|th|er)?,? " YEAR "\\b"},
    {PC_AGE_ANS, R_NUM, CI, 0, NULL, NULL, "\\b([0-9]{1,3}) ?ans\\b"},
    {PC_AGE_EN, R_NUM, CI, 0, NULL, NULL,
     "\\b([0-9]{1,3})(?:[ \\-]?(?:years?|yrs?)[ \\-]old\\b| ?y\\.o\\.| ?y/o\\b| ?yo\\b)"},
    {PC_ADDR_FR, R_NUM, 0, 0, NULL, NULL,
     "\\b[0-9]{1,6}(?:-[0-9]{1,5})?[A-Za-z]?,? (?i:rue|avenue|av|ave|boulevard|boul|blvd|bd|"
     "chemin|ch|rang|route|rte|place|montee|cote|croissant|impasse|allee|promenade|terrasse)"
     "\\b\\.? (?:(?i:de la|du|des|de|de l'|d'|l')\\.? ?)?[A-Za-z0-9][A-Za-z'\\-]*"
     "(?: [A-Z][A-Za-z'\\-]*){0,3}"},
    {PC_ADDR_EN, R_NUM, 0, 0, NULL, NULL,
     "\\b[0-9]{1,6}(?:-[0-9]{1,5})? (?:[A-Z][A-Za-z'\\-]* ){1,3}(?i:street|road|avenue|"
     "boulevard|drive|lane|crescent|court|st|rd|ave|blvd|dr|ln|cres|ct)\\b\\.?"},
    {PC_FORM_AH, R_NUM, CI, 0, NULL, NULL, "\\bah ?-? ?(25[13])\\b"},
    {PO_ITEM, R_NUM, CI, 0, NULL, NULL, "\\b(?:(" STRENGTH ")|(" FORM ")|(" RENEW ")|(" QUAL "))"},

    /* ---- keyword-led ---- */
    {PC_FILE_NO, R_KW, CI, 16, "dossier|mrn|chart|file|record", NULL,
     "(?:\\b" NO " ?(?:de |du )?(?:dossier|chart|file|record)|# ?dossier|"
     "\\bdossier(?: (?:" NO "|#|hospitalier|medical|usager|patient|de l'usager))?|"
     "\\b(?:mrn|chart(?: (?:" NO "|number|#))?|(?:file|record|hospital) (?:" NO "|number|#)|"
     "medical record(?: (?:" NO "|number|#))?))"
     "(\\.? ?:? ?(?:" NO "|#)? ?:? ?)((?:[a-z]{1,4}[ \\-]?)?[0-9](?:-?[0-9]){3,14})\\b"},
    {PC_LICENCE, R_KW, CI, 16,
     "lic|licence|license|permis|pratique|prescripteur|membre|cmq|oiiq|opq|oiiaq|odq|practice|"
     "prescriber|college|permit|member|registration",
     NULL,
     "(?:# ?(?:lic|licence|license|permis)|\\b(?:" NO " ?(?:de |du )?)?(?:lic|licence|license|"
     "permis|prescripteur)(?: (?:" NO "|number|#))?|\\b" NO " ?(?:de |du )?(?:pratique|membre)|"
     "\\b(?:cmq|oiiq|opq|oiiaq|odq)|\\b(?:practice|prescriber|college|licence|license|permit|"
     "member|registration) (?:" NO "|number|#|id))"
     "(\\.? ?:? ?(?:" NO "|#)? ?:? ?)([0-9]{4,8}|[0-9]{1,2}-[0-9]{3,6})\\b"},
    {PC_AGE_LABEL, R_KW, CI, 0, "age|agee|aged", NULL,
     "\\b(?:agee?|aged?)(?: de| of)? ?:? ?([0-9]{1,3})\\b(?: ?ans\\b)?"},
    {PC_PERSON, R_KW, 0, 0, HONORIFIC_KW, HONORIFIC_KW_CS, "\\b" HONORIFIC " " NAME},
    {PC_DOCTOR, R_KW, 0, 0, "docteur|docteure", "Dr|Dre|DR|DRE", "\\b" DOCTOR " " NAME},
    {PC_PRESCRIBER_LABEL, R_KW, 0, 0, PRESCRIBER_LABEL, NULL,
     "\\b(?i:" PRESCRIBER_LABEL ")(?: ?:)? ?(?:" DOCTOR " )?" NAME},
    {PC_PATIENT_LABEL, R_KW, 0, 0, PATIENT_LABEL, NULL,
     "\\b(?i:" PATIENT_LABEL ")(?: ?:)? ?(?:" HONORIFIC " )?" NAME},
    {PC_PATIENT_LABEL_SHORT, R_KW, 0, 0, PATIENT_LABEL_SHORT, NULL,
     "\\b(?i:" PATIENT_LABEL_SHORT ") ?: ?(?:" HONORIFIC " )?" NAME},
    {PC_ORDER_FOR, R_KW, 0, 0, ORDER_FOR, NULL,
     "\\b(?i:" ORDER_FOR ") (?i:pour|for|de) (?:" HONORIFIC " )?" NAME},
    {PC_PHARMACY_FR, R_KW, 0, 0, "pharmacie", NULL,
     "\\b(?i:pharmacie) (?:(?:du|de la|des|de|chez) |de l'|d')?" NAME},
    /* "Corner Drug Pharmacy": the name comes before the keyword. */
    {PC_PHARMACY_EN, R_KW, 0, 100, "pharmacy|drugstore", NULL, NAME " (?i:pharmacy|drugstore)\\b"},
    {PC_PHARMACY_BRAND, R_KW, 0, 0, NULL, BRANDS, "\\b(" BRANDS ")\\b"},
    {PC_RCPT_LABEL, R_KW, 0, 0,
     "destinataire|a l'attention de|a l'att|att.|att :|att:|attn|attention|to the attention of",
     NULL, "\\b(?i:" RCPT_LABEL ") ?" NAME},
    {PC_PARENT_LABEL, R_KW, 0, 0, PARENT_LABEL, NULL, "\\b(?i:" PARENT_LABEL ")(?: ?:)? ?" NAME},
    {PC_PARENT_LABEL_SHORT, R_KW, 0, 0, "mere|pere|mother|father", NULL,
     "\\b(?i:mere|pere|mother|father) ?: ?" NAME},
};
#define NPATTERNS (sizeof(patterns) / sizeof(patterns[0]))

/* How far (bytes from a label's end to its value's start) a label reaches. */
#define PHONE_LABEL_REACH 40
#define SHORT_LABEL_REACH 4 /* "T : 819…" */
#define NAM_LABEL_REACH 30
#define DOB_LABEL_REACH 25

static const char *const kind_names[F_KIND_COUNT] = {
    [F_NAM] = "nam",
    [F_DOB] = "dob",
    [F_DATE] = "date",
    [F_FILE_NO] = "file-no",
    [F_LICENCE] = "licence",
    [F_PHONE] = "phone",
    [F_FAX] = "fax",
    [F_POSOLOGY] = "posology",
    [F_PERSON] = "person",
    [F_PRESCRIBER] = "prescriber",
    [F_PATIENT_NAME] = "patient-name",
    [F_PHARMACY] = "pharmacy",
    [F_ADDRESS] = "address",
    [F_PARENT_NAME] = "parent-name",
    [F_AGE] = "age",
    [F_PROFESSION] = "profession",
    [F_TELECONSULT] = "teleconsult",
    [F_FORM_AH] = "form-ah",
    [F_CONTACT_CUE] = "contact-cue",
};

const char *finding_kind_name(enum finding_kind k)
{
	if ((unsigned)k >= F_KIND_COUNT)
		return "unknown";
	return kind_names[k];
}

/* ---- word lists (sorted: searched with bsearch) ---- */

static const char *const name_stop[] = {
    "a",        "acces",        "adresse",   "age",        "and",     "au",
    "aux",      "avec",         "bcc",       "bonjour",    "bureau",  "cc",
    "cci",      "ce",           "cell",      "cellulaire", "ces",     "cette",
    "chus",     "cisss",        "ciusss",    "clinique",   "cmq",     "cordialement",
    "courriel", "date",         "ddn",       "de",         "dear",    "des",
    "dob",      "docteur",      "docteure",  "dossier",    "dr",      "dre",
    "du",       "elle",         "email",     "en",         "est",     "et",
    "ext",      "fax",          "fw",        "fwd",        "hello",   "hi",
    "hopital",  "il",           "ips",       "je",         "la",      "le",
    "les",      "lic",          "licence",   "license",    "m",       "ma",
    "madame",   "md",           "medecin",   "merci",      "mes",     "mlle",
    "mme",      "mon",          "monsieur",  "mr",         "mrs",     "ms",
    "nam",      "ne",           "nee",       "no",         "nom",     "nos",
    "notre",    "nous",         "numero",    "objet",      "of",      "oiiq",
    "on",       "ordonnance",   "ou",        "par",        "patient", "patiente",
    "permis",   "pharmacie",    "pharmacy",  "phone",      "poste",   "pour",
    "prenom",   "prescripteur", "que",       "qui",        "ramq",    "re",
    "regards",  "rx",           "sa",        "ses",        "sexe",    "signature",
    "son",      "subject",      "sujet",     "sur",        "svp",     "tel",
    "telec",    "telecopieur",  "telephone", "the",        "to",      "tr",
    "un",       "une",          "usager",    "usagere",    "via",     "vos",
    "votre",    "vous"};

static const char *const org_stop[] = {
    "adresse", "bonjour", "cell",  "cellulaire", "courriel", "date",        "ddn",
    "dob",     "email",   "fax",   "nam",        "objet",    "phone",       "poste",
    "ramq",    "subject", "sujet", "tel",        "telec",    "telecopieur", "telephone"};

static const char *const not_age[] = {
    "a",      "ago",  "apres",    "au",  "aux",     "avant", "ces",  "chaque",  "dans",
    "depuis", "des",  "durant",   "en",  "environ", "et",    "for",  "il",      "in",
    "last",   "les",  "moins",    "of",  "ou",      "over",  "past", "pendant", "plus",
    "pour",   "pres", "quelques", "sur", "tous",    "under", "y"};

static const char *const not_age_before_de[] = {"autour", "delai", "moins", "plus", "pres"};

static const char *const po_single[] = {
    "bid", "daily", "die",      "dispense", "hs", "id",  "im",   "inh", "ir",
    "iv",  "po",    "prn",      "qam",      "qd", "qhs", "qid",  "qod", "qpm",
    "qte", "qty",   "quantite", "quantity", "sc", "sl",  "stat", "tid", "top"};

static const char *const po_units[] = {"bouffee",
                                       "bouffees",
                                       "caps",
                                       "capsule",
                                       "capsules",
                                       "cc",
                                       "co",
                                       "comp",
                                       "comprime",
                                       "comprimes",
                                       "cos",
                                       "cp",
                                       "cps",
                                       "fois",
                                       "g",
                                       "gelule",
                                       "gelules",
                                       "goutte",
                                       "gouttes",
                                       "gtt",
                                       "gttes",
                                       "inh",
                                       "inhalation",
                                       "inhalations",
                                       "iu",
                                       "mcg",
                                       "meq",
                                       "mg",
                                       "ml",
                                       "mmol",
                                       "puff",
                                       "puffs",
                                       "spray",
                                       "sprays",
                                       "supp",
                                       "suppositoire",
                                       "suppositoires",
                                       "tab",
                                       "tablet",
                                       "tablets",
                                       "tabs",
                                       "times",
                                       "ug",
                                       "ui",
                                       "unit",
                                       "unite",
                                       "unites",
                                       "units",
                                       "vaporisation",
                                       "vaporisations",
                                       "x"};

static const char *const po_words[] = {"apres",
                                       "as",
                                       "at",
                                       "au",
                                       "aux",
                                       "avant",
                                       "bid",
                                       "cinq",
                                       "daily",
                                       "deux",
                                       "die",
                                       "dispense",
                                       "durant",
                                       "en",
                                       "every",
                                       "for",
                                       "four",
                                       "hs",
                                       "id",
                                       "im",
                                       "inh",
                                       "ir",
                                       "iv",
                                       "le",
                                       "matin",
                                       "mitte",
                                       "non",
                                       "once",
                                       "pendant",
                                       "per",
                                       "po",
                                       "prn",
                                       "q",
                                       "qam",
                                       "qd",
                                       "qhs",
                                       "qid",
                                       "qod",
                                       "qpm",
                                       "qte",
                                       "qty",
                                       "quantite",
                                       "quantity",
                                       "quatre",
                                       "refill",
                                       "refills",
                                       "ren",
                                       "renouv",
                                       "renouvelable",
                                       "renouvellement",
                                       "renouvellements",
                                       "repeat",
                                       "repeats",
                                       "sc",
                                       "six",
                                       "sl",
                                       "stat",
                                       "three",
                                       "tid",
                                       "top",
                                       "trois",
                                       "twice",
                                       "un",
                                       "une",
                                       "x"};

static const char *const street_fr[] = {
    "allee",     "av",        "ave",    "avenue", "bd",        "blvd",    "boul",
    "boulevard", "ch",        "chemin", "cote",   "croissant", "impasse", "montee",
    "place",     "promenade", "rang",   "route",  "rte",       "rue",     "terrasse"};

static const char *const street_en[] = {"ave",      "avenue", "blvd", "boulevard", "court", "cres",
                                        "crescent", "ct",     "dr",   "drive",     "lane",  "ln",
                                        "rd",       "road",   "st",   "street"};

enum wl_id {
	WL_NAME_STOP,
	WL_ORG_STOP,
	WL_NOT_AGE,
	WL_NOT_AGE_DE,
	WL_PO_SINGLE,
	WL_PO_UNITS,
	WL_PO_WORDS,
	WL_STREET_FR,
	WL_STREET_EN,
	WL_COUNT
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define WL(a)                                                                                      \
	{                                                                                          \
		a, NELEM(a)                                                                        \
	}
static const struct {
	const char *const *w;
	size_t n;
} wlists[WL_COUNT] = {
    [WL_NAME_STOP] = WL(name_stop), [WL_ORG_STOP] = WL(org_stop),
    [WL_NOT_AGE] = WL(not_age),     [WL_NOT_AGE_DE] = WL(not_age_before_de),
    [WL_PO_SINGLE] = WL(po_single), [WL_PO_UNITS] = WL(po_units),
    [WL_PO_WORDS] = WL(po_words),   [WL_STREET_FR] = WL(street_fr),
    [WL_STREET_EN] = WL(street_en),
};

/* ---- the compiled set ---- */

#define MATCH_LIMIT 100000
#define OVEC_PAIRS 16

/* One Hyperscan literal: a keyword of a detector. */
struct keyword {
	unsigned char det;  /* enum dp_id */
	unsigned char len;  /* bytes */
	unsigned char word; /* starts with a word character: needs a boundary before */
	unsigned char wend; /* ends with one: a label needs a boundary after */
};

struct detectors {
	unsigned char role[DP_COUNT];
	uint32_t wl_mask[WL_COUNT]
	                [27]; /* per first letter (26 = other): bit n-1 = a word of n bytes */
	hs_database_t *db;
	hs_scratch_t *proto; /* never used to scan: cloned into the pool */
	pthread_mutex_t lock;
	hs_scratch_t **pool; /* idle scratches, protected by lock */
	size_t npool, cappool;
	struct keyword *kw;
	size_t nkw;
	pcre2_code *re[DP_COUNT];
	pcre2_match_context *mctx;
	unsigned back[DP_COUNT];
};

void detectors_free(struct detectors *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->npool; i++)
		hs_free_scratch(d->pool[i]);
	free(d->pool);
	if (d->proto)
		hs_free_scratch(d->proto);
	if (d->db)
		hs_free_database(d->db);
	free(d->kw);
	for (int i = 0; i < DP_COUNT; i++)
		pcre2_code_free(d->re[i]);
	pcre2_match_context_free(d->mctx);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static pcre2_code *compile_one(const char *re, int ci, char *err, size_t errlen)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *c =
	    pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
	                  PCRE2_USE_OFFSET_LIMIT | (ci ? PCRE2_CASELESS : 0), &ec, &eo, NULL);
	if (!c) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(ec, msg, sizeof(msg));
		snprintf(err, errlen, "detectors: PCRE2 pattern at %zu: %s", (size_t)eo,
		         (const char *)msg);
		return NULL;
	}
	/* JIT is an optimisation: without it (e.g. no executable memory) the
	 * interpreter gives the same results, slower. */
	ec = pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);
	if (ec != 0)
		msg_warn("detectors: PCRE2 JIT unavailable (%d), using the interpreter", ec);
	return c;
}

static int is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_word(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/*
 * Can byte c border a keyword of len bytes?  Any non-word byte, but only
 * ASCII space or punctuation for a short one ("MD", "Dr", "tel"): in
 * garbage read as text, short runs of letters between non-ASCII bytes are
 * everywhere (the same rule as lexicon.c).
 */
static int is_boundary(char c, size_t len)
{
	if (is_word(c))
		return 0;
	return len >= 4 || (c >= 0x20 && c < 0x7f);
}

/* The keywords of every detector, as Hyperscan literals. */
struct kwlist {
	const char **lit;
	size_t *len;
	unsigned *flags, *ids;
	size_t n, cap;
};

static void kw_add(struct detectors *d, struct kwlist *L, enum dp_id det, const char *list,
                   unsigned flags)
{
	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, '|');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (L->n == L->cap) {
			L->cap = L->cap ? 2 * L->cap : 256;
			L->lit = xrealloc(L->lit, L->cap * sizeof(*L->lit));
			L->len = xrealloc(L->len, L->cap * sizeof(*L->len));
			L->flags = xrealloc(L->flags, L->cap * sizeof(*L->flags));
			L->ids = xrealloc(L->ids, L->cap * sizeof(*L->ids));
			d->kw = xrealloc(d->kw, L->cap * sizeof(*d->kw));
		}
		L->lit[L->n] = p;
		L->len[L->n] = n;
		L->flags[L->n] = flags;
		L->ids[L->n] = (unsigned)L->n;
		d->kw[L->n].det = (unsigned char)det;
		d->kw[L->n].len = (unsigned char)n;
		d->kw[L->n].word = is_word(p[0]);
		d->kw[L->n].wend = is_word(p[n - 1]);
		L->n++;
		p = e ? e + 1 : p + n;
	}
}

struct detectors *detectors_new(char *err, size_t errlen)
{
	struct detectors *d = xcalloc(1, sizeof(*d));
	struct kwlist L = {0};
	hs_compile_error_t *cerr = NULL;

	if (pthread_mutex_init(&d->lock, NULL) != 0) {
		snprintf(err, errlen, "detectors: mutex init failed");
		free(d);
		return NULL;
	}
	for (int l = 0; l < WL_COUNT; l++)
		for (size_t i = 0; i < wlists[l].n; i++) {
			const char *w = wlists[l].w[i];
			size_t n = strlen(w);
			unsigned c = (unsigned char)w[0];
			if (i > 0 && strcmp(wlists[l].w[i - 1], w) >= 0) {
				snprintf(err, errlen,
				         "detectors: word list %d not sorted at \"%s\"", l, w);
				goto fail;
			}
			if (n >= 1 && n <= 23)
				d->wl_mask[l][c >= 'a' && c <= 'z' ? c - 'a' : 26] |= 1u << (n - 1);
		}
	if (hs_valid_platform() != HS_SUCCESS) {
		snprintf(err, errlen, "detectors: this CPU cannot run Hyperscan (SSSE3 needed)");
		goto fail;
	}
	for (size_t i = 0; i < NPATTERNS; i++) {
		const struct dp *p = &patterns[i];
		d->back[p->id] = p->back;
		d->role[p->id] = (unsigned char)p->role;
		kw_add(d, &L, p->id, p->kw, HS_FLAG_CASELESS);
		kw_add(d, &L, p->id, p->kw_cs, 0);
	}
	d->nkw = L.n;
	if (hs_compile_lit_multi(L.lit, L.flags, L.ids, L.len, (unsigned)L.n, HS_MODE_BLOCK, NULL,
	                         &d->db, &cerr) != HS_SUCCESS) {
		snprintf(err, errlen, "detectors: keyword %d: %s", cerr->expression, cerr->message);
		hs_free_compile_error(cerr);
		goto fail;
	}
	if (hs_alloc_scratch(d->db, &d->proto) != HS_SUCCESS) {
		snprintf(err, errlen, "detectors: cannot allocate Hyperscan scratch");
		goto fail;
	}

	d->mctx = pcre2_match_context_create(NULL);
	if (!d->mctx) {
		snprintf(err, errlen, "detectors: out of memory");
		goto fail;
	}
	pcre2_set_match_limit(d->mctx, MATCH_LIMIT);
	pcre2_set_depth_limit(d->mctx, 1000);
	for (size_t i = 0; i < NPATTERNS; i++) {
		const struct dp *p = &patterns[i];
		if (!p->re)
			continue;
		d->re[p->id] = compile_one(p->re, p->flags & CI, err, errlen);
		if (!d->re[p->id])
			goto fail;
	}
	free(L.lit);
	free(L.len);
	free(L.flags);
	free(L.ids);
	return d;
fail:
	free(L.lit);
	free(L.len);
	free(L.flags);
	free(L.ids);
	detectors_free(d);
	return NULL;
}

static hs_scratch_t *scratch_get(const struct detectors *cd)
{
	struct detectors *d = (struct detectors *)cd; /* only the locked pool changes */
	hs_scratch_t *s = NULL;

	pthread_mutex_lock(&d->lock);
	if (d->npool > 0)
		s = d->pool[--d->npool];
	else if (hs_clone_scratch(d->proto, &s) != HS_SUCCESS)
		s = NULL;
	pthread_mutex_unlock(&d->lock);
	return s;
}

static void scratch_put(const struct detectors *cd, hs_scratch_t *s)
{
	struct detectors *d = (struct detectors *)cd;

	pthread_mutex_lock(&d->lock);
	if (d->npool == d->cappool) {
		d->cappool = d->cappool ? 2 * d->cappool : 4;
		d->pool = xrealloc(d->pool, d->cappool * sizeof(*d->pool));
	}
	d->pool[d->npool++] = s;
	pthread_mutex_unlock(&d->lock);
}

/* ---- findings ---- */

void findings_free(struct findings *f)
{
	if (!f)
		return;
	free(f->v);
	f->v = NULL;
	f->n = f->cap = 0;
}

static struct finding *add(struct findings *out, enum finding_kind k, unsigned flags, size_t s,
                           size_t e, size_t label_start, const char *value)
{
	struct finding *f;

	if (out->n == out->cap) {
		out->cap = out->cap ? 2 * out->cap : 32;
		out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
	}
	f = &out->v[out->n++];
	memset(f, 0, sizeof(*f));
	f->kind = k;
	f->flags = flags;
	f->start = s;
	f->end = e;
	f->label_start = (flags & FF_LABELLED) ? label_start : s;
	if (value) {
		size_t n = strnlen(value, sizeof(f->value) - 1);
		memcpy(f->value, value, n);
		f->value[n] = '\0';
	}
	return f;
}

/* ---- one scan ---- */

/* A keyword found by Hyperscan: where its detector may start matching. */
struct trigger {
	size_t from;  /* earliest start of the match */
	size_t at;    /* the keyword's start: latest start of the match */
	unsigned det; /* enum dp_id */
};

struct triggers {
	struct trigger *v;
	size_t n, cap;
};

struct scan {
	const struct detectors *d;
	const char *t;
	size_t len;
	pcre2_match_data *md;
	pcre2_match_context *mctx; /* this call's copy: the offset limit changes */
	struct triggers labels;    /* labels: from = start, at = end; sorted by end */
	struct triggers cues;      /* contact cues (they label phone numbers) */
	struct findings f;
	size_t covered[DP_COUNT]; /* end of each detector's last match */
};

static void push(struct triggers *T, const struct trigger *t)
{
	if (T->n == T->cap) {
		T->cap = T->cap ? 2 * T->cap : 64;
		T->v = xrealloc(T->v, T->cap * sizeof(*T->v));
	}
	T->v[T->n++] = *t;
}

struct hs_ctx {
	const struct detectors *d;
	const char *t;
	size_t len;
	struct triggers *T, *labels;
};

static int on_keyword(unsigned id, unsigned long long from, unsigned long long to, unsigned fl,
                      void *ctx)
{
	struct hs_ctx *c = ctx;
	const struct keyword *k = &c->d->kw[id];
	size_t at = (size_t)to - k->len;
	struct trigger tr;

	(void)from;
	(void)fl;
	/* Whole words only: "dossier" but not "sousdossier". */
	if (k->word && at > 0 && !is_boundary(c->t[at - 1], k->len))
		return 0;
	if (c->d->role[k->det] == R_LABEL) {
		if (k->wend && to < c->len && !is_boundary(c->t[to], k->len))
			return 0;
		tr.det = k->det;
		tr.from = at;
		tr.at = (size_t)to;
		push(c->labels, &tr);
		return 0;
	}
	tr.det = k->det;
	tr.at = at;
	tr.from = at > c->d->back[k->det] ? at - c->d->back[k->det] : 0;
	push(c->T, &tr);
	return 0;
}

static int cmp_trigger(const void *a, const void *b)
{
	const struct trigger *x = a, *y = b;
	if (x->from != y->from)
		return x->from < y->from ? -1 : 1;
	if (x->det != y->det)
		return x->det < y->det ? -1 : 1;
	return x->at < y->at ? -1 : x->at > y->at;
}

static int cmp_label_end(const void *a, const void *b)
{
	const struct trigger *x = a, *y = b;
	return x->at < y->at ? -1 : x->at > y->at;
}

/* Triggers come in the order of their ends, nearly in the order of their starts. */
static void sort_triggers(struct triggers *T)
{
	size_t moves = 0;

	for (size_t i = 1; i < T->n; i++) {
		size_t j = i;
		struct trigger x;
		if (cmp_trigger(&T->v[i - 1], &T->v[i]) <= 0)
			continue;
		x = T->v[i];
		while (j > 0 && cmp_trigger(&T->v[j - 1], &x) > 0) {
			j--;
			moves++;
		}
		memmove(&T->v[j + 1], &T->v[j], (i - j) * sizeof(*T->v));
		T->v[j] = x;
		if (moves > 16 * T->n) {
			qsort(T->v, T->n, sizeof(*T->v), cmp_trigger);
			return;
		}
	}
}

/* The contact cue ("où vous pouvez me rejoindre") nearest before pos, within reach. */
static const struct trigger *cue_before(const struct scan *sc, size_t pos)
{
	const struct triggers *C = &sc->cues; /* from = start, at = end; in order */
	size_t lo = 0, hi = C->n;

	while (lo < hi) { /* first cue ending after pos */
		size_t mid = lo + (hi - lo) / 2;
		if (C->v[mid].at <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0 && pos - C->v[lo - 1].at <= PHONE_LABEL_REACH)
		return &C->v[lo - 1];
	return NULL;
}

/*
 * The label of one of the families in mask (bits of enum dp_id) nearest
 * before pos, within its reach; NULL when none.
 */
static const struct trigger *label_before(const struct scan *sc, size_t pos, unsigned mask,
                                          size_t reach)
{
	const struct triggers *L = &sc->labels; /* from = start, at = end */
	size_t lo = 0, hi = L->n;

	while (lo < hi) { /* first label ending after pos */
		size_t mid = lo + (hi - lo) / 2;
		if (L->v[mid].at <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo-- > 0) {
		const struct trigger *l = &L->v[lo];
		size_t gap = pos - l->at;
		if (gap > reach)
			break;
		if (!(mask & (1u << l->det)))
			continue;
		/* "T :" and "F :" only count right before the number. */
		if ((l->det == LB_PHONE_SHORT || l->det == LB_FAX_SHORT) && gap > SHORT_LABEL_REACH)
			continue;
		return l;
	}
	return NULL;
}

static int has_digit(const char *s, size_t a, size_t b)
{
	for (size_t i = a; i < b; i++)
		if (isdigit((unsigned char)s[i]))
			return 1;
	return 0;
}

/* ---- names ---- */

/* A shorter list for organisation names ("Pharmacie du Lac", "Destinataire : Dr X"). */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Is the word w (n bytes, trailing dots ignored, any case) in word list wl? */
static int word_in(const struct detectors *d, enum wl_id wl, const char *w, size_t n)
{
	char lw[24];
	const char *key = lw;
	unsigned c;

	while (n > 0 && w[n - 1] == '.')
		n--;
	if (n == 0 || n >= sizeof(lw))
		return 0;
	c = (unsigned)tolower((unsigned char)w[0]);
	if (!(d->wl_mask[wl][c >= 'a' && c <= 'z' ? c - 'a' : 26] & (1u << (n - 1))))
		return 0; /* no word of that length with that first letter */
	for (size_t i = 0; i < n; i++)
		lw[i] = (char)tolower((unsigned char)w[i]);
	lw[n] = '\0';
	return bsearch(&key, wlists[wl].w, wlists[wl].n, sizeof(*wlists[wl].w), cmp_str) != NULL;
}

/*
 * Trim a captured name [s,e) at the first word that is not a name ("Tél",
 * "NAM", "Date"…).  Returns the number of name words kept (0 = no name) and
 * the new end in *ne.
 */
static int name_trim(const struct detectors *d, const char *t, size_t s, size_t e, int org,
                     size_t *ne)
{
	int words = 0;
	size_t p = s, keep = s;

	while (p < e) {
		size_t q = p;
		/* Name words are capitalised (NW); lower-case ones are particles. */
		int particle = islower((unsigned char)t[p]);
		while (q < e && t[q] != ' ')
			q++;
		if (!particle && word_in(d, org ? WL_ORG_STOP : WL_NAME_STOP, t + p, q - p))
			break;
		if (!particle) {
			words++;
			keep = q;
		}
		p = q + 1;
	}
	*ne = keep;
	return words;
}

/* ---- value helpers ---- */

static int leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int day_ok(int y, int m, int d)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	if (m == 2 && d == 29 && y > 0 && !leap(y))
		return 0;
	return 1;
}

static int num(const char *s, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n && i < 6; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int month_of(const char *s, size_t n)
{
	unsigned k;

	if (n < 3)
		return 0;
	k = (unsigned)tolower((unsigned char)s[0]) << 16 |
	    (unsigned)tolower((unsigned char)s[1]) << 8 | (unsigned)tolower((unsigned char)s[2]);
#define M3(a, b, c) ((unsigned)(a) << 16 | (unsigned)(b) << 8 | (unsigned)(c))
	switch (k) {
	case M3('j', 'a', 'n'):
		return 1;
	case M3('f', 'e', 'v'):
	case M3('f', 'e', 'b'):
		return 2;
	case M3('m', 'a', 'r'):
		return 3;
	case M3('a', 'v', 'r'):
	case M3('a', 'p', 'r'):
		return 4;
	case M3('m', 'a', 'i'):
	case M3('m', 'a', 'y'):
		return 5;
	case M3('j', 'u', 'i'): /* juin, juillet */
		return n >= 4 && tolower((unsigned char)s[3]) == 'n' ? 6 : n >= 4 ? 7 : 0;
	case M3('j', 'u', 'n'):
		return 6;
	case M3('j', 'u', 'l'):
		return 7;
	case M3('a', 'o', 'u'):
	case M3('a', 'u', 'g'):
		return 8;
	case M3('s', 'e', 'p'):
		return 9;
	case M3('o', 'c', 't'):
		return 10;
	case M3('n', 'o', 'v'):
		return 11;
	case M3('d', 'e', 'c'):
		return 12;
	default:
		return 0;
	}
#undef M3
}

/* Checks letters + YYMMDD; the last two characters are checked by the caller. */
static int nam_core_ok(const char *n)
{
	int mm, dd;
	for (int i = 0; i < 4; i++)
		if (!isalpha((unsigned char)n[i]))
			return 0;
	for (int i = 4; i < 10; i++)
		if (!isdigit((unsigned char)n[i]))
			return 0;
	mm = (n[6] - '0') * 10 + (n[7] - '0');
	dd = (n[8] - '0') * 10 + (n[9] - '0');
	if (mm > 50)
		mm -= 50;
	return day_ok(0, mm, dd);
}

int nam_is_plausible(const char *nam12)
{
	if (!nam12 || strnlen(nam12, 12) < 12)
		return 0;
	return nam_core_ok(nam12) && isdigit((unsigned char)nam12[10]) &&
	       isdigit((unsigned char)nam12[11]);
}

/* ---- handlers ---- */

#define G(i) (ov[2 * (i)])
#define GE(i) (ov[2 * (i) + 1])
#define GSET(i) (ov[2 * (i)] != PCRE2_UNSET)
#define GLEN(i) (GE(i) - G(i))

static void on_phone(struct scan *sc, const PCRE2_SIZE *ov)
{
	char v[11];
	size_t a = GSET(1) ? G(1) : G(2), start = G(0);
	const struct trigger *cue = cue_before(sc, start);
	const struct trigger *lb = label_before(
	    sc, start, 1u << LB_PHONE | 1u << LB_PHONE_SHORT | 1u << LB_FAX | 1u << LB_FAX_SHORT,
	    PHONE_LABEL_REACH);
	enum finding_kind k = F_PHONE;
	unsigned flags = 0;
	size_t ls = 0;

	memcpy(v, sc->t + a, 3);
	memcpy(v + 3, sc->t + G(3), 3);
	memcpy(v + 6, sc->t + G(4), 4);
	v[10] = '\0';
	if (lb && (!cue || lb->at >= cue->at)) {
		flags |= FF_LABELLED;
		ls = lb->from;
		if (lb->det == LB_FAX || lb->det == LB_FAX_SHORT)
			k = F_FAX;
	} else if (cue) {
		/* "où vous pouvez me rejoindre : 819…" labels a phone number too */
		flags |= FF_LABELLED;
		ls = cue->from;
	}
	add(&sc->f, k, flags, start, GE(0), ls, v);
}

static void on_nam(struct scan *sc, const PCRE2_SIZE *ov)
{
	char v[13];
	int upper = 1, placeholder;
	const struct trigger *lb = label_before(sc, G(0), 1u << LB_NAM, NAM_LABEL_REACH);

	for (int i = 0; i < 4; i++) {
		char c = sc->t[G(1) + (size_t)i];
		if (!isupper((unsigned char)c))
			upper = 0;
		v[i] = (char)toupper((unsigned char)c);
	}
	memcpy(v + 4, sc->t + G(2), 4);
	memcpy(v + 8, sc->t + G(3), 2);
	v[10] = (char)toupper((unsigned char)sc->t[G(4)]);
	v[11] = (char)toupper((unsigned char)sc->t[G(4) + 1]);
	v[12] = '\0';
	placeholder = !isdigit((unsigned char)v[10]) || !isdigit((unsigned char)v[11]);
	if (!lb && (!upper || placeholder))
		return;
	if (!nam_core_ok(v))
		return;
	add(&sc->f, F_NAM, lb ? FF_LABELLED | FF_CONFIDENT : 0, G(0), GE(0), lb ? lb->from : 0, v);
}

static void on_date(struct scan *sc, enum dp_id id, const PCRE2_SIZE *ov)
{
	int y = 0, m = 0, d = 0;
	char v[9];
	const struct trigger *lb;
	const char *t = sc->t;

	switch (id) {
	case PC_DATE_ISO:
		y = num(t + G(1), GLEN(1));
		m = num(t + G(2), GLEN(2));
		d = num(t + G(3), GLEN(3));
		break;
	case PC_DATE_NUM:
		d = num(t + G(1), GLEN(1));
		m = num(t + G(2), GLEN(2));
		y = num(t + G(3), GLEN(3));
		if (m > 12 && d <= 12) { /* 12/25/1946: month first (US style) */
			int x = m;
			m = d;
			d = x;
		}
		break;
	case PC_DATE_DMY:
		d = GLEN(1) == 3 ? 1 : num(t + G(1), GLEN(1)); /* "1er" */
		m = month_of(t + G(2), GLEN(2));
		y = num(t + G(3), GLEN(3));
		break;
	case PC_DATE_MDY:
		m = month_of(t + G(1), GLEN(1));
		d = num(t + G(2), GLEN(2));
		y = num(t + G(3), GLEN(3));
		break;
	default:
		return;
	}
	if (y < 1880 || y > 2099 || !day_ok(y, m, d))
		return;
	v[0] = (char)('0' + y / 1000 % 10);
	v[1] = (char)('0' + y / 100 % 10);
	v[2] = (char)('0' + y / 10 % 10);
	v[3] = (char)('0' + y % 10);
	v[4] = (char)('0' + m / 10);
	v[5] = (char)('0' + m % 10);
	v[6] = (char)('0' + d / 10);
	v[7] = (char)('0' + d % 10);
	v[8] = '\0';
	lb = label_before(sc, G(0), 1u << LB_DOB, DOB_LABEL_REACH);
	if (lb && !has_digit(t, lb->at, G(0)))
		add(&sc->f, F_DOB, FF_LABELLED, G(0), GE(0), lb->from, v);
	else
		add(&sc->f, F_DATE, 0, G(0), GE(0), 0, v);
}

/* Keep letters and digits (upper case) and, for licences, '-'. */
static void compact(char *dst, size_t cap, const char *s, size_t n, int keep_dash)
{
	size_t j = 0;
	for (size_t i = 0; i < n && j + 1 < cap; i++)
		if (isalnum((unsigned char)s[i]) || (keep_dash && s[i] == '-'))
			dst[j++] = (char)toupper((unsigned char)s[i]);
	dst[j] = '\0';
}

static void on_file_no(struct scan *sc, const PCRE2_SIZE *ov)
{
	char v[32];
	const char *t = sc->t;
	size_t digits = 0;

	for (size_t i = G(2); i < GE(2); i++)
		digits += isdigit((unsigned char)t[i]) != 0;
	if (digits < 4)
		return;
	/* "le dossier 2021", "dossier 2020-2021": after a bare "dossier" with
	 * no ":", "#" or "no", a year is not a file number. */
	if (GE(0) - G(0) >= 7 && strncasecmp(t + G(0), "dossier", 7) == 0 && G(1) == G(0) + 7 &&
	    GLEN(1) <= 1 && (t[G(2)] == '1' || t[G(2)] == '2') &&
	    (GLEN(2) == 4 || (GLEN(2) == 9 && t[G(2) + 4] == '-')))
		return;
	compact(v, sizeof(v), t + G(2), GLEN(2), 0);
	add(&sc->f, F_FILE_NO, FF_LABELLED, G(2), GE(2), G(0), v);
}

static void on_licence(struct scan *sc, const PCRE2_SIZE *ov)
{
	char v[32];
	compact(v, sizeof(v), sc->t + G(2), GLEN(2), 1);
	add(&sc->f, F_LICENCE, FF_LABELLED, G(2), GE(2), G(0), v);
}

static int prev_word(const char *t, size_t pos, size_t *ws, size_t *we)
{
	size_t e = pos;
	while (e > 0 && !isalnum((unsigned char)t[e - 1]))
		e--;
	if (e == 0 || pos - e > 2)
		return 0;
	size_t s = e;
	while (s > 0 && isalpha((unsigned char)t[s - 1]))
		s--;
	if (s == e)
		return 0;
	*ws = s;
	*we = e;
	return 1;
}

static void on_age(struct scan *sc, enum dp_id id, const PCRE2_SIZE *ov)
{
	const char *t = sc->t;
	int age = num(t + G(1), GLEN(1));
	size_t ws, we;
	char v[8];

	if (age < 0 || age > 120)
		return;
	if (id == PC_AGE_ANS) {
		/* "54 ans" is an age; "depuis 10 ans", "10 ans d'expérience" are durations. */
		if (prev_word(t, G(0), &ws, &we)) {
			if (word_in(sc->d, WL_NOT_AGE, t + ws, we - ws))
				return;
			if (we - ws == 2 && strncasecmp(t + ws, "de", 2) == 0) {
				size_t ws2, we2;
				if (prev_word(t, ws, &ws2, &we2) &&
				    word_in(sc->d, WL_NOT_AGE_DE, t + ws2, we2 - ws2))
					return;
			}
		}
		if (GE(0) + 3 < sc->len &&
		    (strncmp(t + GE(0), " d'", 3) == 0 || strncmp(t + GE(0), " de ", 4) == 0))
			return;
	}
	snprintf(v, sizeof(v), "%d", age);
	if (id == PC_AGE_LABEL)
		add(&sc->f, F_AGE, FF_LABELLED, G(1), GE(0), G(0), v);
	else
		add(&sc->f, F_AGE, 0, G(0), GE(0), 0, v);
}

/* Names: honorific / label patterns whose last group is the name. */
static void on_name(struct scan *sc, enum dp_id id, const PCRE2_SIZE *ov, int ng)
{
	int g = ng - 1; /* the NAME group is the last one */
	size_t ne;
	int org = id == PC_PHARMACY_FR || id == PC_PHARMACY_EN || id == PC_PHARMACY_BRAND ||
	          id == PC_RCPT_LABEL;

	if (g < 1 || !GSET(g))
		return;
	if (name_trim(sc->d, sc->t, G(g), GE(g), org, &ne) == 0)
		return;
	switch (id) {
	case PC_PERSON:
		add(&sc->f, F_PERSON, FF_LABELLED, G(g), ne, G(0), NULL);
		break;
	case PC_DOCTOR:
	case PC_PRESCRIBER_LABEL:
		add(&sc->f, F_PRESCRIBER, FF_LABELLED, G(g), ne, G(0), NULL);
		add(&sc->f, F_PERSON, FF_LABELLED, G(g), ne, G(0), NULL);
		break;
	case PC_PATIENT_LABEL:
	case PC_PATIENT_LABEL_SHORT:
	case PC_ORDER_FOR:
		add(&sc->f, F_PATIENT_NAME, FF_LABELLED, G(g), ne, G(0), NULL);
		add(&sc->f, F_PERSON, FF_LABELLED, G(g), ne, G(0), NULL);
		break;
	case PC_PARENT_LABEL:
	case PC_PARENT_LABEL_SHORT:
		add(&sc->f, F_PARENT_NAME, FF_LABELLED, G(g), ne, G(0), NULL);
		add(&sc->f, F_PERSON, FF_LABELLED, G(g), ne, G(0), NULL);
		break;
	case PC_PHARMACY_FR:
		add(&sc->f, F_PHARMACY, 0, G(0), ne, 0, NULL);
		break;
	case PC_PHARMACY_EN:
		/* the name ends with "Pharmacy", after the trimmed words */
		if (ne != GE(g))
			return;
		add(&sc->f, F_PHARMACY, 0, G(0), GE(0), 0, NULL);
		break;
	case PC_PHARMACY_BRAND:
		add(&sc->f, F_PHARMACY, 0, G(0), GE(0), 0, NULL);
		break;
	case PC_RCPT_LABEL:
		add(&sc->f, F_PHARMACY, FF_LABELLED, G(g), ne, G(0), NULL);
		break;
	default:
		break;
	}
}

static void on_pcre(struct scan *sc, enum dp_id id, const PCRE2_SIZE *ov, int ng)
{
	char v[16];

	switch (id) {
	case PC_PHONE:
		on_phone(sc, ov);
		break;
	case PC_NAM:
		on_nam(sc, ov);
		break;
	case PC_DATE_ISO:
	case PC_DATE_NUM:
	case PC_DATE_DMY:
	case PC_DATE_MDY:
		on_date(sc, id, ov);
		break;
	case PC_FILE_NO:
		on_file_no(sc, ov);
		break;
	case PC_LICENCE:
		on_licence(sc, ov);
		break;
	case PC_AGE_ANS:
	case PC_AGE_EN:
	case PC_AGE_LABEL:
		on_age(sc, id, ov);
		break;
	case PC_ADDR_FR:
	case PC_ADDR_EN:
		add(&sc->f, F_ADDRESS, 0, G(0), GE(0), 0, NULL);
		break;
	case PC_FORM_AH:
		snprintf(v, sizeof(v), "AH-%.3s", sc->t + G(1));
		add(&sc->f, F_FORM_AH, 0, G(0), GE(0), 0, v);
		break;
	case SP_TELECONSULT:
		add(&sc->f, F_TELECONSULT, 0, G(0), GE(0), 0, NULL);
		break;
	case SP_PROFESSION:
		add(&sc->f, F_PROFESSION, 0, G(0), GE(0), 0, NULL);
		break;
	case SP_CONTACT_CUE: {
		struct trigger cue = {.from = G(0), .at = GE(0), .det = SP_CONTACT_CUE};
		add(&sc->f, F_CONTACT_CUE, 0, G(0), GE(0), 0, NULL);
		push(&sc->cues, &cue);
		break;
	}
	default:
		on_name(sc, id, ov, ng);
		break;
	}
}

/* ---- posology ---- */

/*
 * Posology items close together form a group; a group is posology when it
 * has a renewal ("Ren. 24 mois"), or a dose (80 mg, 1 co) with a route,
 * frequency, duration or quantity, or a strength with a form count.  A lone
 * "25 g" stays a quantity of flour.  The trigger is a dose or a renewal;
 * the items after it are read one by one, each within POSO_GAP bytes of the
 * previous one.
 */
#define POSO_GAP 40

/* Routes and frequencies written as one word: no need for PCRE2. */

static int po_item(struct scan *sc, size_t from, size_t limit, size_t *s, size_t *e)
{
	const PCRE2_SIZE *ov;
	int rc;

	if (from >= sc->len)
		return 0;
	if (from == limit && is_alpha(sc->t[from])) {
		size_t w = from;
		while (w < sc->len && is_alpha(sc->t[w]))
			w++;
		if ((w == sc->len || !is_word(sc->t[w])) &&
		    word_in(sc->d, WL_PO_SINGLE, sc->t + from, w - from)) {
			*s = from;
			*e = w;
			return PO_G_QUAL;
		}
	}
	pcre2_set_offset_limit(sc->mctx, limit);
	rc = pcre2_match(sc->d->re[PO_ITEM], (PCRE2_SPTR)sc->t, sc->len, from, 0, sc->md, sc->mctx);
	if (rc <= 0)
		return 0;
	ov = pcre2_get_ovector_pointer(sc->md);
	*s = ov[0];
	*e = ov[1];
	for (int g = PO_G_STRENGTH; g <= PO_G_QUAL && g < rc; g++)
		if (ov[2 * g] != PCRE2_UNSET)
			return g;
	return 0;
}

/* The first words of routes, frequencies, durations, quantities and renewals. */

/* What may follow the number of a dose: units, forms, "fois", "x". */

/* Can a posology item start at p?  Saves a PCRE2 call on most words. */
static int po_start(const struct detectors *d, const char *t, size_t len, size_t p)
{
	size_t e = p;
	char c = t[p], n = p + 1 < len ? t[p + 1] : ' ';

	if (is_digit(c)) { /* a dose: "80 mg", "1,5 ml", "1/2 co", "2 fois", "50 %" */
		while (e < len && is_digit(t[e]))
			e++;
		if (e + 1 < len && strchr(".,/", t[e]) && is_digit(t[e + 1]))
			for (e++; e < len && is_digit(t[e]); e++)
				;
		if (e < len && t[e] == ' ')
			e++;
		if (e < len && t[e] == '%')
			return 1;
		/* micrograms: text_normalize leaves the micro sign as Greek mu */
		if (e + 1 < len && ((t[e] == '\xce' && t[e + 1] == '\xbc') ||
		                    (t[e] == '\xc2' && t[e + 1] == '\xb5')))
			return 1;
		p = e;
		while (e < len && is_alpha(t[e]))
			e++;
		return word_in(d, WL_PO_UNITS, t + p, e - p);
	}
	c = (char)tolower((unsigned char)c);
	if ((c == 'q' || c == 'x') && (is_digit(n) || n == ' ' || n == '.'))
		return 1; /* q4h, q.i.d., x10 jours, x 10 jours */
	if (n == '.' || (c == 's' && n == '/'))
		return strchr("psidbtqh", c) != NULL; /* p.o., s.c., s/c */
	while (e < len && is_alpha(t[e]))
		e++;
	return word_in(d, WL_PO_WORDS, t + p, e - p);
}

/* The first posology item starting at a word start in [from, limit]. */
static int po_next(struct scan *sc, size_t from, size_t limit, size_t *s, size_t *e)
{
	const char *t = sc->t;

	for (size_t p = from; p <= limit && p < sc->len; p++) {
		int g;
		if (!is_word(t[p]) || (p > 0 && is_word(t[p - 1])) ||
		    !po_start(sc->d, t, sc->len, p))
			continue;
		g = po_item(sc, p, p, s, e);
		if (g)
			return g;
	}
	return 0;
}

/*
 * Does a posology read as a prescription (the shorthand, a quantity, a
 * duration) rather than as advice in a letter ("500 mg deux fois par jour")?
 */
static int po_dispense(const char *t, size_t n)
{
	static const char *const marks[] = {
	    "po",       "die",      "id",       "bid",    "tid",     "qid",          "qhs",
	    "hs",       "prn",      "qd",       "qod",    "qam",     "qpm",          "stat",
	    "sc",       "im",       "iv",       "sl",     "qte",     "qty",          "mitte",
	    "dispense", "quantite", "quantity", "refill", "refills", "renouvelable", NULL};
	for (size_t i = 0; i < n;) {
		size_t w = i;
		while (w < n && is_word(t[w]))
			w++;
		if (w > i) {
			for (size_t k = 0; marks[k]; k++)
				if (strlen(marks[k]) == w - i &&
				    strncasecmp(t + i, marks[k], w - i) == 0)
					return 1;
			/* q4h, x 10 jours, x10 j */
			if ((t[i] == 'q' || t[i] == 'Q') && w - i <= 4 && w - i >= 2 &&
			    is_digit(t[i + 1]))
				return 1;
		}
		if (w < n && (t[w] == 'x' || t[w] == 'X') && w + 1 < n &&
		    (is_digit(t[w + 1]) || (t[w + 1] == ' ' && w + 2 < n && is_digit(t[w + 2]))) &&
		    (w == 0 || !is_word(t[w - 1])))
			return 1;
		i = w < n ? w + 1 : n;
	}
	/* "pendant 10 jours", "for 7 days" */
	return memmem(t, n, "pendant ", 8) != NULL || memmem(t, n, "durant ", 7) != NULL ||
	       memmem(t, n, "for ", 4) != NULL;
}

/* Returns the end of what was read, for the caller's bookkeeping. */
static size_t on_posology(struct scan *sc, size_t at)
{
	size_t s, e, s0, e0;
	int have[PO_G_QUAL + 1] = {0};
	int g = po_start(sc->d, sc->t, sc->len, at) ? po_item(sc, at, at, &s, &e) : 0;

	if (!g)
		return at;
	s0 = s;
	e0 = e;
	have[g] = 1;
	while ((g = po_next(sc, e0, e0 + POSO_GAP, &s, &e)) != 0 && e > e0) {
		have[g] = 1;
		e0 = e;
	}
	if (have[PO_G_RENEW] || ((have[PO_G_STRENGTH] || have[PO_G_FORM]) && have[PO_G_QUAL]) ||
	    (have[PO_G_STRENGTH] && have[PO_G_FORM]))
		add(&sc->f, F_POSOLOGY,
		    have[PO_G_RENEW] || have[PO_G_FORM] || po_dispense(sc->t + s0, e0 - s0)
		        ? FF_DISPENSE
		        : 0,
		    s0, e0, 0, NULL);
	return e0;
}

/* ---- NAM cross-checks ---- */

/* The NAM letters a surname + first name give: 3 letters of the surname (X-padded) + 1. */
static void nam_letters(const char *t, size_t ss, size_t se, size_t fs, char out[5])
{
	int n = 0;
	for (size_t i = ss; i < se && n < 3; i++)
		if (isalpha((unsigned char)t[i]))
			out[n++] = (char)toupper((unsigned char)t[i]);
	while (n < 3)
		out[n++] = 'X';
	out[3] = (char)toupper((unsigned char)t[fs]);
	out[4] = '\0';
}

#define NAME_REACH 300

/* First finding (sorted by start) that starts at or after pos. */
static size_t first_from(const struct findings *f, size_t pos)
{
	size_t lo = 0, hi = f->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->v[mid].start < pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Does a name near the NAM give its letters?  The name words of the person
 * and patient-name findings within NAME_REACH bytes are tried in pairs
 * (surname, first name), in both orders, so that "Mme Test Covid",
 * "COVID, Test" and "Nom : Covid … Prénom : Test" all give COVT.
 * sc->f must be sorted by start.
 */
static int nam_matches_name(const struct scan *sc, const struct finding *nam)
{
	const char *t = sc->t;
	size_t w[16][2];
	int nw = 0;
	size_t lo = first_from(&sc->f, nam->start > NAME_REACH ? nam->start - NAME_REACH : 0);

	for (size_t i = lo; i < sc->f.n && sc->f.v[i].start <= nam->end + NAME_REACH; i++) {
		const struct finding *p = &sc->f.v[i];
		if (p->kind != F_PERSON && p->kind != F_PATIENT_NAME)
			continue;
		for (size_t q = p->start; q < p->end && nw < 16;) {
			size_t r = q;
			while (r < p->end && t[r] != ' ')
				r++;
			if (isupper((unsigned char)t[q])) {
				w[nw][0] = q;
				w[nw][1] = r;
				nw++;
			}
			q = r + 1;
		}
	}
	for (int a = 0; a < nw; a++)
		for (int b = 0; b < nw; b++) {
			char code[5];
			if (w[a][0] == w[b][0])
				continue;
			nam_letters(t, w[a][0], w[a][1], w[b][0], code);
			if (memcmp(code, nam->value, 4) == 0)
				return 1;
		}
	return 0;
}

static int cmp_unsigned(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return x < y ? -1 : x > y;
}

/* YYMMDD of every date found, sorted, to check NAMs against. */
static unsigned *date_keys(const struct findings *f, size_t *n)
{
	unsigned *k = NULL;
	size_t cnt = 0;

	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].kind == F_DOB || f->v[i].kind == F_DATE) {
			if (!k)
				k = xmalloc(f->n * sizeof(*k));
			k[cnt++] = (unsigned)strtoul(f->v[i].value + 2, NULL, 10);
		}
	if (cnt)
		qsort(k, cnt, sizeof(*k), cmp_unsigned);
	*n = cnt;
	return k;
}

/* Does a date in the text give the NAM's YYMMDD (month - 50 for a woman)? */
static int nam_matches_date(const unsigned *keys, size_t n, const struct finding *nam)
{
	const char *v = nam->value;
	unsigned yy = (unsigned)(v[4] - '0') * 10 + (unsigned)(v[5] - '0');
	unsigned mm = (unsigned)(v[6] - '0') * 10 + (unsigned)(v[7] - '0');
	unsigned dd = (unsigned)(v[8] - '0') * 10 + (unsigned)(v[9] - '0');
	unsigned want;

	if (mm > 50)
		mm -= 50;
	want = yy * 10000 + mm * 100 + dd;
	return n > 0 && bsearch(&want, keys, n, sizeof(*keys), cmp_unsigned) != NULL;
}

/* ---- clean-up ---- */

static int cmp_finding(const void *a, const void *b)
{
	const struct finding *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return x->end > y->end ? -1 : x->end < y->end;
}

/*
 * Insertion sort: the findings of each pass come nearly in order (a name
 * starts a few bytes after its label's trigger…), which makes this linear
 * in practice; past a budget of moves, qsort takes over.
 */
static void nearly_sorted(struct finding *v, size_t n)
{
	size_t moves = 0;

	for (size_t i = 1; i < n; i++) {
		size_t j = i;
		struct finding x;
		if (cmp_finding(&v[i - 1], &v[i]) <= 0)
			continue;
		x = v[i];
		while (j > 0 && cmp_finding(&v[j - 1], &x) > 0) {
			j--;
			moves++;
		}
		memmove(&v[j + 1], &v[j], (i - j) * sizeof(*v));
		v[j] = x;
		if (moves > 16 * n) {
			qsort(v, n, sizeof(*v), cmp_finding);
			return;
		}
	}
}

/* Sort the findings: [0, nk) from the keyword pass, [nk, n) from the numbers. */
static void sort_findings(struct findings *f, size_t nk)
{
	struct finding *tmp;
	size_t i = 0, j = nk, k = 0;

	nearly_sorted(f->v, nk);
	nearly_sorted(f->v + nk, f->n - nk);
	if (nk == 0 || nk == f->n || cmp_finding(&f->v[nk - 1], &f->v[nk]) <= 0)
		return;
	tmp = xmalloc(f->n * sizeof(*tmp));
	while (i < nk && j < f->n)
		tmp[k++] = cmp_finding(&f->v[i], &f->v[j]) <= 0 ? f->v[i++] : f->v[j++];
	while (i < nk)
		tmp[k++] = f->v[i++];
	while (j < f->n)
		tmp[k++] = f->v[j++];
	memcpy(f->v, tmp, f->n * sizeof(*tmp));
	free(tmp);
}

static int overlaps(const struct finding *a, const struct finding *b)
{
	return a->start < b->end && b->start < a->end;
}

static int weak(enum finding_kind k)
{
	return k == F_PHONE || k == F_FAX || k == F_DATE;
}

static int strong(enum finding_kind k)
{
	return k == F_FILE_NO || k == F_LICENCE || k == F_NAM;
}

/* Findings of these kinds are short: neighbours further apart do not overlap. */
#define SHORT_SPAN 96

/*
 * On findings sorted by start: merge overlapping findings of one kind (a name found after
 * "Ordonnance pour" and after "Mme"), then drop a phone number that is really the value of a file
 * or licence number, or a date inside a NAM.
 */
static void tidy(struct findings *f)
{
	size_t n = 0;

	for (size_t i = 0; i < f->n; i++) {
		struct finding *x = &f->v[i];
		int merged = 0;
		for (size_t j = n; j-- > 0;) {
			struct finding *y = &f->v[j];
			if (x->start - y->start > SHORT_SPAN)
				break;
			if (y->kind != x->kind || !overlaps(x, y))
				continue;
			if (x->end > y->end)
				y->end = x->end;
			if ((x->flags & FF_LABELLED) && !(y->flags & FF_LABELLED))
				y->label_start = x->label_start;
			y->flags |= x->flags;
			if (!y->value[0])
				memcpy(y->value, x->value, sizeof(y->value));
			merged = 1;
			break;
		}
		if (!merged)
			f->v[n++] = *x;
	}
	f->n = n;

	n = 0;
	for (size_t i = 0; i < f->n; i++) {
		const struct finding *x = &f->v[i];
		int drop = 0;
		if (weak(x->kind)) {
			for (size_t j = i; j-- > 0 && x->start - f->v[j].start <= SHORT_SPAN;)
				if (strong(f->v[j].kind) && overlaps(x, &f->v[j]))
					drop = 1;
			for (size_t j = i + 1; j < f->n && f->v[j].start < x->end; j++)
				if (strong(f->v[j].kind) && overlaps(x, &f->v[j]))
					drop = 1;
		}
		if (!drop)
			f->v[n++] = *x;
	}
	f->n = n;
}

/* Try detector id with its match starting exactly at `at`. */
static void try_at(struct scan *sc, enum dp_id id, size_t at)
{
	const PCRE2_SIZE *ov;
	int ng;

	if (at < sc->covered[id] || at >= sc->len)
		return;
	pcre2_set_offset_limit(sc->mctx, at);
	ng = pcre2_match(sc->d->re[id], (PCRE2_SPTR)sc->t, sc->len, at, 0, sc->md, sc->mctx);
	if (ng <= 0)
		return;
	ov = pcre2_get_ovector_pointer(sc->md);
	sc->covered[id] = ov[1];
	on_pcre(sc, id, ov, ng);
}

/* The end of the letters starting at p. */
static size_t word_end(const char *t, size_t len, size_t p)
{
	while (p < len && is_alpha(t[p]))
		p++;
	return p;
}

/* A phone number needs 10 digits (11 with a leading 1) among separators. */
static int phone_shape(const char *t, size_t len, size_t p)
{
	int digits = 0;
	for (size_t i = p; i < len && i < p + 20; i++) {
		if (is_digit(t[i]))
			digits++;
		else if (!strchr(" .-()", t[i]))
			break;
	}
	return digits >= 10;
}

/*
 * One run of digits, and the detectors its shape allows ("COVT 4653…" a
 * NAM, "819-…" a phone, "3 janvier 1946" a date, "80 mg" a dose, "54 ans"
 * an age, "1234 rue…" an address): cheap checks in C first, so that PCRE2
 * only runs where it can match.
 */
static void number_at(struct scan *sc, size_t p)
{
	const char *t = sc->t;
	size_t len = sc->len, q = p, r, ws, we, w1, w1e;
	size_t d;
	char pc = p > 0 ? t[p - 1] : ' ', c;

	while (q < len && is_digit(t[q]))
		q++;
	d = q - p;
	c = q < len ? t[q] : ' ';

	/* NAM: 4 letters, then these digits (attached, or after a space or '-'). */
	if (d >= 4) {
		if (is_alpha(pc) && p >= 4)
			try_at(sc, PC_NAM, p - 4);
		else if ((pc == ' ' || pc == '-') && p >= 5 && is_alpha(t[p - 2]))
			try_at(sc, PC_NAM, p - 5);
	}
	/* AH-251, AH 253, AH251 */
	if (d == 3) {
		for (size_t k = 1; k <= 4 && k + 1 <= p; k++)
			if ((t[p - k] == 'h' || t[p - k] == 'H') &&
			    (t[p - k - 1] == 'a' || t[p - k - 1] == 'A')) {
				try_at(sc, PC_FORM_AH, p - k - 1);
				break;
			}
	}
	if (is_alpha(pc) || pc == '_')
		return; /* part of a word: "B12", "H012345" */
	if ((pc == '.' || pc == ',' || pc == '-' || pc == '/' || pc == ':') && p >= 2 &&
	    is_digit(t[p - 2]))
		return; /* the rest of a number already seen: 12.5, 1946-01-03, 10:30 */

	/* Phone: 3 digits (area code), 10 digits, or the country code 1. */
	if ((d == 3 || d == 10 || (d == 1 && t[p] == '1')) && phone_shape(t, len, p)) {
		size_t at = p;
		if (pc == '(' || pc == '+')
			at = p - 1;
		if (p >= 2 && t[p - 2] == '+' && pc == ' ')
			at = p - 2;
		try_at(sc, PC_PHONE, at);
	}
	/* Numeric dates. */
	if (d == 4 && (c == '-' || c == '/' || c == '.'))
		try_at(sc, PC_DATE_ISO, p);
	if (d <= 2 && (c == '-' || c == '/' || c == '.'))
		try_at(sc, PC_DATE_NUM, p);
	/* "January 3, 1946": a month before the number. */
	if (d <= 2 && prev_word(t, p, &ws, &we) && we - ws >= 3 && month_of(t + ws, we - ws))
		try_at(sc, PC_DATE_MDY, ws);

	/* The word after the number (after a fraction and one space): "80 mg",
	 * "54 ans", "1234 rue", "3 janvier"; w1 = letters attached ("1er", "12e"). */
	w1 = q;
	w1e = word_end(t, len, w1);
	r = q;
	if (r + 1 < len && (t[r] == '.' || t[r] == ',' || t[r] == '/') && is_digit(t[r + 1]))
		for (r++; r < len && is_digit(t[r]); r++)
			;
	if (r < len && t[r] == ' ')
		r++;
	we = word_end(t, len, r);

	if (d <= 2) {
		size_t m = r, me = we;
		if (w1e > w1 && w1e - w1 <= 2 && w1e < len && t[w1e] == ' ') { /* 1er, 3rd */
			m = w1e + 1;
			me = word_end(t, len, m);
		}
		if (me - m >= 3 && month_of(t + m, me - m))
			try_at(sc, PC_DATE_DMY, p);
	}
	/* "Ren. 24 mois", "Mitte 30", "refills: 3": the keyword before the number. */
	if (d <= 2 && prev_word(t, p, &ws, &we) && strchr("rRmM", t[ws]) &&
	    ws >= sc->covered[PC_POSOLOGY])
		sc->covered[PC_POSOLOGY] = on_posology(sc, ws);
	we = word_end(t, len, r);
	if (d <= 5 && r < len && (we > r || t[r] == '%' || t[r] == '\xce' || t[r] == '\xc2') &&
	    p >= sc->covered[PC_POSOLOGY])
		sc->covered[PC_POSOLOGY] = on_posology(sc, p);
	if (d <= 3 && we - r == 3 && strncasecmp(t + r, "ans", 3) == 0)
		try_at(sc, PC_AGE_ANS, p);
	if (d <= 3 && r < len &&
	    (t[r] == 'y' || t[r] == 'Y' ||
	     (c == '-' && q + 1 < len && (t[q + 1] == 'y' || t[q + 1] == 'Y'))))
		try_at(sc, PC_AGE_EN, p);
	if (d <= 6) {
		/* French: "1234 rue", "500, avenue", "12e Avenue", "12-B rue" */
		size_t k = q;
		if (k < len && t[k] == '-')
			for (k++; k < len && is_digit(t[k]); k++)
				;
		if (k < len && is_alpha(t[k]) && !is_alpha(k + 1 < len ? t[k + 1] : ' '))
			k++;
		if (k < len && t[k] == ',')
			k++;
		if (k < len && t[k] == ' ') {
			size_t se = word_end(t, len, k + 1);
			if (word_in(sc->d, WL_STREET_FR, t + k + 1, se - k - 1))
				try_at(sc, PC_ADDR_FR, p);
		}
		/* English: "10 Main Street", "221 Baker St." */
		if (pc != ',' && we > r && t[r] >= 'A' && t[r] <= 'Z') {
			size_t x = we;
			for (int n = 0; n < 3 && x < len && t[x] == ' '; n++) {
				size_t xe = word_end(t, len, x + 1);
				if (xe == x + 1)
					break;
				if (word_in(sc->d, WL_STREET_EN, t + x + 1, xe - x - 1)) {
					try_at(sc, PC_ADDR_EN, p);
					break;
				}
				x = xe;
			}
		}
	}
}

/* Does any of the 8 bytes at p look like an ASCII digit? */
static int maybe_digit8(const char *p)
{
	uint64_t x;
	memcpy(&x, p, 8);
	x ^= 0x3030303030303030ULL; /* digits become 0..9 */
	/* a byte below 10 (with its top bit clear) */
	return ((x - 0x0a0a0a0a0a0a0a0aULL) & ~x & 0x8080808080808080ULL) != 0;
}

static void numbers(struct scan *sc)
{
	const char *t = sc->t;
	size_t len = sc->len, i = 0;

	while (i < len) {
		if (i + 8 <= len && !maybe_digit8(t + i)) {
			i += 8;
			continue;
		}
		if (!is_digit(t[i])) {
			i++;
			continue;
		}
		number_at(sc, i);
		while (i < len && is_digit(t[i]))
			i++;
	}
}

int detect_scan(const struct detectors *d, const char *text, size_t len, struct findings *out)
{
	struct scan sc;
	struct triggers T = {0};
	struct hs_ctx hc = {d, text, len, &T, NULL};
	hs_scratch_t *scratch;
	size_t nk;
	int rc = 0;

	if (!d || !out || (!text && len))
		return -1;
	if (len == 0)
		return 0;
	if (len > UINT_MAX) {
		msg_error("detect: text of %zu bytes is too large to scan", len);
		return -1;
	}
	memset(&sc, 0, sizeof(sc));
	sc.d = d;
	sc.t = text;
	sc.len = len;
	hc.labels = &sc.labels;

	scratch = scratch_get(d);
	if (!scratch) {
		msg_error("detect: cannot allocate Hyperscan scratch");
		return -1;
	}
	if (hs_scan(d->db, text, (unsigned)len, 0, scratch, on_keyword, &hc) != HS_SUCCESS) {
		msg_error("detect: Hyperscan scan failed");
		rc = -1;
	}
	scratch_put(d, scratch);
	if (rc != 0)
		goto out;

	sc.md = pcre2_match_data_create(OVEC_PAIRS, NULL);
	sc.mctx = pcre2_match_context_copy(d->mctx);
	if (!sc.md || !sc.mctx) {
		msg_error("detect: out of memory");
		rc = -1;
		goto out;
	}

	/* Hyperscan reports matches in the order of their ends, so the labels
	 * are sorted by end; make sure. */
	for (size_t i = 1; i < sc.labels.n; i++)
		if (sc.labels.v[i].at < sc.labels.v[i - 1].at) {
			qsort(sc.labels.v, sc.labels.n, sizeof(*sc.labels.v), cmp_label_end);
			break;
		}

	/* Keyword-led detectors, in the order of where their matches may start. */
	sort_triggers(&T);
	for (size_t i = 0; i < T.n; i++) {
		const struct trigger *tr = &T.v[i];
		enum dp_id id = (enum dp_id)tr->det;
		size_t from = tr->from;
		const PCRE2_SIZE *ov;
		int ng;

		if (tr->at < sc.covered[id])
			continue; /* inside this detector's previous match */
		if (from < sc.covered[id])
			from = sc.covered[id];
		pcre2_set_offset_limit(sc.mctx, tr->at);
		ng = pcre2_match(d->re[id], (PCRE2_SPTR)text, len, from, 0, sc.md, sc.mctx);
		if (ng <= 0)
			continue; /* no match here (or the match limit was reached) */
		ov = pcre2_get_ovector_pointer(sc.md);
		sc.covered[id] = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
		on_pcre(&sc, id, ov, ng);
	}
	nk = sc.f.n;
	numbers(&sc);
	sort_findings(&sc.f, nk);

	/* NAM confidence: labelled, or the DOB / the name nearby gives it. */
	{
		size_t nkeys;
		unsigned *keys = date_keys(&sc.f, &nkeys);
		for (size_t i = 0; i < sc.f.n; i++) {
			struct finding *f = &sc.f.v[i];
			if (f->kind != F_NAM || (f->flags & FF_CONFIDENT))
				continue;
			if (nam_matches_date(keys, nkeys, f) || nam_matches_name(&sc, f))
				f->flags |= FF_CONFIDENT;
		}
		free(keys);
	}
	tidy(&sc.f);

	if (out->cap < out->n + sc.f.n) {
		out->cap = out->n + sc.f.n;
		out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
	}
	if (sc.f.n)
		memcpy(out->v + out->n, sc.f.v, sc.f.n * sizeof(*sc.f.v));
	out->n += sc.f.n;
out:
	pcre2_match_data_free(sc.md);
	pcre2_match_context_free(sc.mctx);
	free(T.v);
	free(sc.labels.v);
	free(sc.cues.v);
	findings_free(&sc.f);
	return rc;
}
