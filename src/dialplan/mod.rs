//! From conversations to Routee dialplans, and from key presses back to
//! conversations. Everything here is pure: no IO, no clock, no HTTP. The engine
//! calls it with what it fetched and sends what it gets back.
//!
//! A call's conversation comes from one of two sources (`shared/CONTRACT.md`):
//!
//! - a **Voiceflow assistant**: [`render::render_turn`] turns one Dialog Manager
//!   turn (its traces) into one dialplan, and [`input::request_for_input`] turns
//!   the keys the callee pressed (or their silence) into the next request;
//! - a **dialplan template** from `dialplans/`: [`template`] parses and validates
//!   the TOML files and renders the call and every answer to a key press.
//!
//! Both produce the same call shape, the seed's ticket flow
//! (`shared/seeds/004`): what there is to say, the options with barge-in, a pause
//! as long as the input timeout, the options again, a pause, then `COLLECT`.
//!
//! # Layout
//!
//! - [`language`]: Voiceflow/BCP-47 locales and voice names to Routee's 14
//!   languages and two genders.
//! - [`speech`]: text made fit for `SAY`: markup stripped, entities unescaped,
//!   long text split at Routee's 1000-character limit.
//! - [`phrases`]: the gateway's own words in each of the 14 languages, one
//!   data file per language (`dialplans/phrases/`).
//! - [`render`]: Voiceflow traces to one dialplan per turn, plus the holding,
//!   fallback and closing dialplans.
//! - [`input`]: DTMF digits and silence to the next Dialog Manager request.
//! - [`template`]: the dialplan template format, its validation and rendering.

pub mod input;
pub mod language;
pub mod phrases;
pub mod render;
pub mod speech;
pub mod template;

pub use input::{CallerInput, request_for_input};
pub use language::{UnsupportedLanguage, gender_for_voice, routee_language};
pub use render::{
    ActionNames, Phrases, RenderedTurn, TurnContext, Voice, closing_dialplan, fallback_dialplan,
    holding_dialplan, render_turn,
};
pub use template::{Closing, Template, TemplateError, TemplateTurn, Templates, Vars};
