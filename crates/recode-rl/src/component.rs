//! The components `reward_funcs` selects (shared by the config's validation and the task's
//! rewarder, so neither depends on the other).

use recode_reward::RewardKind;

use crate::RlError;

/// One selectable component of the ReCode training reward (`reward_funcs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// A component of the reward library (`format`, `es_star`, `em_star`, `es`, `em`).
    Score(RewardKind),
    /// ES* of the edit script old → answer against old → reference
    /// ([`recode_reward::edit`]); not in the paper: an unchanged copy of the old code scores
    /// −1.5 instead of nearly +2.
    EditEsStar,
}

/// The names `reward_funcs` accepts, for error messages.
pub const COMPONENT_NAMES: &str = "format, es_star, em_star, es, em, edit_es_star";

impl std::str::FromStr for Component {
    type Err = RlError;
    fn from_str(s: &str) -> Result<Self, RlError> {
        if s == "edit_es_star" {
            return Ok(Component::EditEsStar);
        }
        s.parse::<RewardKind>()
            .map(Component::Score)
            .map_err(|_| RlError::UnknownComponent {
                name: s.to_string(),
            })
    }
}

impl Component {
    /// The name in metrics and config.
    pub fn name(self) -> &'static str {
        match self {
            Component::Score(k) => k.name(),
            Component::EditEsStar => "edit_es_star",
        }
    }
}
